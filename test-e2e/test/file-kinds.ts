// Files of every kind a layer can hold, made and shown inside a container, for tests that move
// a layer between corral and another engine and compare what each sees.

/** Makes files of every kind a layer can hold (busybox sh, run as root in a container). */
export const MAKE_FILES = [
  'set -e',
  'mkdir -p /t/dir/sub && cd /t',
  'echo hello > f && chmod 4755 f && ln f hard && ln -s f sym && ln -s /nonexistent dangling',
  'mkfifo fifo && mknod cdev c 1 3 && mknod bdev b 7 0',
  'mkdir sticky && chmod 1777 sticky',
  "echo x > dir/sub/x && chown 1234:5678 dir/sub/x && chmod 2640 dir/sub/x && touch -d '2001-02-03 04:05:06' dir/sub/x",
  `echo long > ${'n'.repeat(200)}`,
  `mkdir -p ${'d/'.repeat(70)} && echo deep > ${'d/'.repeat(70)}deep`,
  'rm /bin/vi && mkdir -p /etc/opq && echo a > /etc/opq/a',
].join('\n');

/** Prints what MAKE_FILES made, as the container sees it. */
export const SHOW_FILES = [
  'cd /t',
  "stat -c '%n %a %u:%g %F %h' f hard sym dangling fifo cdev bdev sticky dir/sub/x",
  "stat -c '%t:%T' cdev bdev",
  'readlink sym; readlink dangling',
  "stat -c '%Y' dir/sub/x",
  'test f -ef hard && echo hard-linked',
  `cat ${'n'.repeat(200)} ${'d/'.repeat(70)}deep`,
  'test -e /bin/vi && echo vi-still-there || echo vi-gone',
  'ls /etc/opq',
].join('\n');

/** What SHOW_FILES prints, the same under docker run and corral run. */
export const EXPECTED_FILES = [
  'f 4755 0:0 regular file 2',
  'hard 4755 0:0 regular file 2',
  'sym 777 0:0 symbolic link 1',
  'dangling 777 0:0 symbolic link 1',
  'fifo 644 0:0 fifo 1',
  'cdev 644 0:0 character special file 1',
  'bdev 644 0:0 block special file 1',
  'sticky 1777 0:0 directory 2',
  'dir/sub/x 2640 1234:5678 regular file 1',
  '1:3',
  '7:0',
  'f',
  '/nonexistent',
  String(Date.UTC(2001, 1, 3, 4, 5, 6) / 1000),
  'hard-linked',
  'long',
  'deep',
  'vi-gone',
  'a',
].join('\n');
