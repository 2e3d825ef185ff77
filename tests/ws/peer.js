// A real WebSocket peer for test-websocket.c: npm's ws (version 8, found
// through NODE_PATH) against the daemon's websocket listener, with a line
// client of its own on the line listener.
//
//     node peer.js URL LINE_PORT MAX_MESSAGE_BYTES
//
// Exits 0 when every check passed, 1 with the reason on stderr; every wait
// is bounded.
'use strict';

const net = require('net');
const WebSocket = require('ws');

const TIMEOUT_MS = 10000;
const [url, linePort, maxMessage] = process.argv.slice(2);
if (!url || !linePort || !maxMessage) {
    console.error('usage: node peer.js URL LINE_PORT MAX_MESSAGE_BYTES');
    process.exit(2);
}

function fail(why) {
    console.error(`peer.js ${url}: ${why}`);
    process.exit(1);
}

function check(cond, what) {
    if (!cond)
        fail(what);
}

// What arrives on one connection, taken one item at a time with a deadline.
class Inbox {
    constructor() {
        this.items = [];
        this.waiters = [];
    }
    push(item) {
        const w = this.waiters.shift();
        if (w)
            w(item);
        else
            this.items.push(item);
    }
    next(what, ms = TIMEOUT_MS) {
        if (this.items.length)
            return Promise.resolve(this.items.shift());
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.waiters.splice(this.waiters.indexOf(done), 1);
                reject(new Error(`no ${what} within ${ms} ms`));
            }, ms);
            const done = (item) => {
                clearTimeout(timer);
                resolve(item);
            };
            this.waiters.push(done);
        });
    }
}

// A WebSocket client whose messages ({text, data}), pongs and close go to
// inboxes. The daemon follows every message with an unsolicited pong whose
// payload is "\n" (a trailer): those are counted, one after each message,
// not handed out; other pongs answer our pings.
function openWs() {
    return new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { handshakeTimeout: TIMEOUT_MS });
        ws.inbox = new Inbox();
        ws.pongs = new Inbox();
        ws.closed = new Inbox();
        ws.messages = 0;
        ws.trailers = 0;
        ws.on('message', (data, isBinary) => {
            check(ws.trailers === ws.messages, `message ${ws.messages} came before the trailer pong of the last one`);
            ws.messages++;
            ws.inbox.push({ text: !isBinary, data });
        });
        ws.on('pong', (data) => {
            if (data.length !== 1 || data[0] !== 0x0a)
                return ws.pongs.push(data);
            check(ws.trailers < ws.messages, `a trailer pong with no message before it (${ws.messages} messages)`);
            ws.trailers++;
        });
        ws.on('close', (code, reason) => ws.closed.push({ code, reason: reason.toString() }));
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
    });
}

// A client of the daemon's line protocol: lines (LF included) as Buffers.
function openLine() {
    return new Promise((resolve, reject) => {
        const sock = net.connect(Number(linePort), '127.0.0.1');
        sock.inbox = new Inbox();
        let pending = Buffer.alloc(0);
        sock.on('data', (chunk) => {
            pending = Buffer.concat([pending, chunk]);
            for (let lf; (lf = pending.indexOf(10)) >= 0; pending = pending.subarray(lf + 1))
                sock.inbox.push(pending.subarray(0, lf + 1));
        });
        sock.once('connect', () => resolve(sock));
        sock.once('error', reject);
    });
}

async function expectMessage(ws, text, data, what) {
    const m = await ws.inbox.next(what);
    check(m.text === text && m.data.equals(Buffer.from(data)),
          `${what}: got a ${m.text ? 'text' : 'binary'} message ${JSON.stringify(m.data.toString('latin1'))}`);
}

// WebSocket clients are in from their 101 on; the line client once a line
// it sends reaches them (what came before is lost).
async function sync(line, readers) {
    for (let k = 0;; k++) {
        check(k < 50, 'the line client was never accepted');
        line.write(`sync ${k}\n`);
        try {
            await readers[0].inbox.next('sync', 200);
            break;
        } catch (e) {
            continue;
        }
    }
    line.write('sync end\n');
    for (const r of readers)
        for (;;) {
            const m = await r.inbox.next('the end of the sync');
            const s = m.data.toString();
            check(m.text && s.startsWith('sync '), `during the sync: ${s}`);
            if (s === 'sync end')
                break;
        }
}

async function exchange(a, b, watcher, line) {
    // What a sends; whether the others get it as text; the line they read.
    const fromWs = [
        ['héllo wörld', {}, true],
        [Buffer.from([0xff, 0xfe, 0x00]), {}, false],
        [Buffer.from('binary but UTF-8'), {}, true],
        ['y'.repeat(2570), {}, true], // 0x0a0a bytes: the daemon sends it in two fragments
    ];
    for (const [sent, opts, text] of fromWs) {
        a.send(sent, opts);
        for (const ws of [b, watcher])
            await expectMessage(ws, text, sent, `a sent ${JSON.stringify(sent.toString())}`);
        const got = await line.inbox.next('a line');
        check(got.equals(Buffer.concat([Buffer.from(sent), Buffer.from('\n')])), `the line client got ${got}`);
    }
    // A fragmented message is one message.
    a.send('frag', { fin: false });
    a.send('mented', { fin: true });
    for (const ws of [b, watcher])
        await expectMessage(ws, true, 'fragmented', 'a fragmented message');
    check((await line.inbox.next('a line')).toString() === 'fragmented\n', 'the fragmented message as a line');
    const fromLine = [
        [Buffer.from('from the line client\n'), true],
        [Buffer.from([0xc3, 0x28, 0x0a]), false],
    ];
    for (const [sent, text] of fromLine) {
        line.write(sent);
        for (const ws of [a, b, watcher])
            await expectMessage(ws, text, sent.subarray(0, sent.length - 1), 'a line');
    }
}

// a, b and the line client send n numbered messages each, interleaved; the
// watcher sees all of them, each sender the others' in the watcher's order.
async function order(a, b, watcher, line, n = 100) {
    for (let i = 0; i < n; i++) {
        a.send(`a-${i}`);
        b.send(`b-${i}`);
        line.write(`l-${i}\n`);
    }
    const seen = [];
    for (let i = 0; i < 3 * n; i++)
        seen.push((await watcher.inbox.next('a numbered message')).data.toString());
    for (const who of 'abl') {
        const mine = seen.filter((m) => m[0] === who);
        check(mine.length === n && mine.every((m, i) => m === `${who}-${i}`), `${who}'s messages out of order`);
    }
    for (const [ws, who] of [[a, 'a'], [b, 'b']]) {
        const want = seen.filter((m) => m[0] !== who);
        for (const w of want)
            await expectMessage(ws, true, w, `${who} in the watcher's order`);
    }
    for (const w of seen.filter((m) => m[0] !== 'l')) {
        const got = (await line.inbox.next('a numbered line')).toString();
        check(got === `${w}\n`, `the line client got ${got} where ${w} was due`);
    }
}

async function closedWith(ws, code, what) {
    const c = await ws.closed.next(`the close of ${what}`);
    check(c.code === code, `${what}: closed with ${c.code}, not ${code}`);
    // The close comes last: every message's trailer came before it.
    check(ws.trailers === ws.messages, `${what}: ${ws.messages} messages, ${ws.trailers} trailer pongs`);
}

async function main() {
    const line = await openLine();
    const a = await openWs(), b = await openWs(), watcher = await openWs();
    await sync(line, [a, b, watcher]);
    await exchange(a, b, watcher, line);
    await order(a, b, watcher, line);

    a.ping('are you there');
    const data = await a.pongs.next('the pong of a ping');
    check(data.toString() === 'are you there', `a pong of ${JSON.stringify(data.toString())}, not the ping's payload`);

    const bad = await openWs();
    bad.send('two\nlines');
    await closedWith(bad, 1003, 'a message with an LF');
    const big = await openWs();
    big.send('x'.repeat(Number(maxMessage)));
    await closedWith(big, 1009, 'a message of max_message_bytes');
    // Neither reached anyone: the next message is the next one.
    b.send('after the errors');
    await expectMessage(a, true, 'after the errors', 'the errors left something behind');
    check((await line.inbox.next('a line')).toString() === 'after the errors\n', 'the errors left something behind');

    for (const ws of [a, b, watcher]) {
        ws.close(1000, 'bye');
        await closedWith(ws, 1000, 'a normal close');
    }
    line.end();
    console.log(`peer.js ${url}: ok`);
}

setTimeout(() => fail('did not finish within 50 s'), 50000).unref();
main().then(() => process.exit(0), (e) => fail(e.stack || e));
