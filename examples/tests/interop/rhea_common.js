// Shared by rhea_send.js and rhea_recv.js: argument parsing, loading rhea from the directory
// scripts/rhea.sh installed it into (RHEA_PREFIX, default target/rhea), the connection
// options (SASL, TLS), the JSON summary and the overall time limit.
'use strict';
const path = require('path');

function parseArgs(argv, defaults) {
  const a = Object.assign({}, defaults);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith('--')) throw new Error('unexpected argument ' + k);
    const name = k.slice(2);
    if (!(name in a)) throw new Error('unknown option ' + k);
    if (typeof a[name] === 'boolean') { a[name] = true; continue; }
    const v = argv[++i];
    if (v === undefined) throw new Error(k + ' needs a value');
    a[name] = typeof a[name] === 'number' ? Number(v) : v;
  }
  return a;
}

function loadRhea() {
  const prefix = process.env.RHEA_PREFIX ||
    path.join(__dirname, '..', '..', '..', 'target', 'rhea');
  return require(path.join(path.resolve(prefix), 'node_modules', 'rhea'));
}

// Prints `result` as one JSON line (the last line of stdout) and exits: 0 unless it timed
// out or recorded errors.
function finish(result) {
  process.stdout.write(JSON.stringify(result) + '\n', () => {
    process.exit(result.timed_out || result.errors.length ? 1 : 0);
  });
}

// Ends the run with timed_out = true after `seconds`.
function limit(seconds, result) {
  const t = setTimeout(() => { result.timed_out = true; finish(result); }, seconds * 1000);
  t.unref();
  return t;
}

// The options for container.connect(): --host/--port; with --username (and --password) rhea
// goes through a SASL layer (PLAIN with a password, ANONYMOUS without); with --ca it speaks
// TLS and verifies the server against that CA file, for the name --servername.
function connectOptions(a) {
  const o = { host: a.host, port: a.port, reconnect: false };
  if (a.username) o.username = a.username;
  if (a.password) o.password = a.password;
  if (a.ca) {
    o.transport = 'tls';
    o.ca = [require('fs').readFileSync(a.ca)];
    o.servername = a.servername;
    o.rejectUnauthorized = true;
  }
  return o;
}

// The options connectOptions reads, with their defaults.
const CONNECT_DEFAULTS = { username: '', password: '', ca: '', servername: 'localhost' };

// `size` bytes that depend on `i`: byte k is (i + k) % 251.
function pattern(i, size) {
  const b = Buffer.alloc(size);
  for (let k = 0; k < size; k++) b[k] = (i + k) % 251;
  return b;
}

module.exports = { parseArgs, loadRhea, finish, limit, connectOptions, pattern, CONNECT_DEFAULTS };
