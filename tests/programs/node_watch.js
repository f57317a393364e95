// A Node.js program (libuv: epoll, timers, inotify): setTimeout and setInterval timers, and
// fs.watch on a directory in which a timer creates one file at a time, the next only once
// the watcher has seen the previous one. Its output depends only on N.
// Usage: node node_watch.js N
'use strict';
const fs = require('fs');
const path = require('path');

const n = Number(process.argv[2] || 200);
const dir = path.resolve('watched');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir);
console.log(`node with ${n} files`);

const seen = new Set();
let created = 0;
let ticks = 0;
let sum = 0;

const watcher = fs.watch(dir, (event, name) => {
  if (!name || seen.has(name)) return;
  seen.add(name);
  const i = Number(name.slice(5));
  sum += i * i;
  if (seen.size % 20 === 0) console.log(`seen ${seen.size} files, sum ${sum}`);
  if (seen.size === n) finish();
  else setTimeout(createNext, 5 + (i % 4) * 5);
});

function createNext() {
  const name = `file-${created}`;
  created += 1;
  fs.writeFileSync(path.join(dir, name), `${name}\n`);
}

const interval = setInterval(() => {
  ticks += 1;
}, 7);

function finish() {
  watcher.close();
  clearInterval(interval);
  const names = fs.readdirSync(dir).sort();
  let bytes = 0;
  for (const f of names) bytes += fs.readFileSync(path.join(dir, f)).length;
  setTimeout(() => {
    console.log(`files ${names.length} bytes ${bytes} sum ${sum}`);
    console.log(`interval ran: ${ticks > 0}`);
    console.log('done');
  }, 50);
}

setTimeout(createNext, 10);
