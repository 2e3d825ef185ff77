// The built-in page of a websocket listener in headless chromium, with a
// line client beside it (run by tests/browser-demo.sh, which starts the
// daemon). Checks, each with a bounded wait:
//  - GET / answers 200 text/html with the Content-Security-Policy, and the
//    page, under it, connects (status "connected", input enabled);
//  - a line the line client sends appears in the page as it was sent;
//  - a second tab connects; a line typed in the first (found by its label)
//    and sent with Enter reaches the line client as exactly that line and LF,
//    the second tab as that line, and the first shows it as "you: ...";
//  - markup in a message shows as text; a message that is not UTF-8
//    appears as "[binary, N bytes]";
//  - both logs hold exactly what was expected (no echo, nothing twice), the
//    first tab sent exactly one WebSocket frame;
//  - no console error or warning, no uncaught exception, no failed request,
//    no HTTP error, no CSP violation in either tab;
//  - a screenshot of the first tab;
//  - after 600 more lines, the log holds the last 500 and shows the end;
//  - SIGTERM to the daemon: the page shows "closed (code 1001 ...)" and
//    disables the input.
// Usage: node demo.mjs NODE_PREFIX CHROMIUM URL LINE_PORT SCREENSHOT DAEMON_PID
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';

const WAIT_MS = 10000; // every single wait
const TOTAL_MS = 90000; // the whole run

const args = process.argv.slice(2);
if (args.length !== 6) {
  console.error('usage: node demo.mjs NODE_PREFIX CHROMIUM URL LINE_PORT SCREENSHOT DAEMON_PID');
  process.exit(2);
}
const [prefix, chromiumPath, url, linePort, screenshot, daemonPid] = args;
const { chromium } = createRequire(path.join(prefix, 'package.json'))('playwright-core');

let step = 'start';
const say = (...a) => console.log('browser-demo:', ...a);
const begin = (s) => {
  step = s;
  say(s);
};
const check = (cond, what) => {
  if (!cond)
    throw new Error(what);
};
const same = (got, want, what) =>
  check(JSON.stringify(got) === JSON.stringify(want),
        `${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
setTimeout(() => {
  console.error(`browser-demo: FAIL: not done after ${TOTAL_MS / 1000} s (at: ${step})`);
  process.exit(1);
}, TOTAL_MS).unref();

// A line client: what it receives, and waits on it.
class LineClient {
  static connect(port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: Number(port) });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`line client: no connection to port ${port} in ${WAIT_MS} ms`));
      }, WAIT_MS);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        resolve(new LineClient(sock));
      });
    });
  }
  constructor(sock) {
    this.sock = sock;
    this.received = Buffer.alloc(0);
    this.ended = false;
    this.waiters = new Set();
    const wake = () => this.waiters.forEach((w) => w());
    sock.on('data', (d) => {
      this.received = Buffer.concat([this.received, d]);
      wake();
    });
    sock.on('close', () => {
      this.ended = true;
      wake();
    });
    sock.on('error', () => {});
  }
  send(data) {
    this.sock.write(data);
  }
  // Resolves with everything received once it holds an LF.
  firstLine() {
    return new Promise((resolve, reject) => {
      const done = () => {
        if (this.received.includes(0x0a)) {
          this.waiters.delete(done);
          clearTimeout(timer);
          resolve(this.received);
        } else if (this.ended) {
          this.waiters.delete(done);
          clearTimeout(timer);
          reject(new Error(`line client: connection closed, received ${JSON.stringify(this.received.toString())}`));
        }
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        reject(new Error(`line client: no LF in ${WAIT_MS} ms, received ${JSON.stringify(this.received.toString())}`));
      }, WAIT_MS);
      this.waiters.add(done);
      done();
    });
  }
  close() {
    this.sock.end();
  }
}

// Everything that went wrong in a tab, and the frames its WebSockets sent.
const problems = [];
function watch(page, name) {
  const sent = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning')
      problems.push(`${name}: console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${name}: uncaught exception: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`${name}: request failed: ${r.url()}: ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400)
      problems.push(`${name}: HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => sent.push(f.payload));
    ws.on('socketerror', (e) => problems.push(`${name}: WebSocket error: ${e}`));
  });
  return sent;
}

const logLines = (page) => page.locator('#log li').allTextContents();
async function waitLine(page, text) {
  try {
    await page.getByRole('log').getByText(text, { exact: true }).waitFor();
  } catch (e) {
    const lines = await logLines(page).catch(() => []);
    throw new Error(`no line ${JSON.stringify(text)} in the log, which holds ${JSON.stringify(lines.slice(-5))}` +
                    ` (last 5 of ${lines.length}): ${e.message.split('\n')[0]}`);
  }
}
async function waitState(page, state) {
  try {
    await page.locator(`#status[data-state="${state}"]`).waitFor();
  } catch (e) {
    const status = await page.locator('#status').textContent().catch(() => '?');
    throw new Error(`the status line is not "${state}" but says ${JSON.stringify(status)}: ${e.message.split('\n')[0]}`);
  }
}

async function openTab(context, name) {
  const page = await context.newPage();
  const sent = watch(page, name);
  const resp = await page.goto(url, { waitUntil: 'load' });
  check(resp, `${name}: no response for ${url}`);
  same(resp.status(), 200, `${name}: status of GET /`);
  const h = resp.headers();
  same(h['content-type'], 'text/html; charset=utf-8', `${name}: Content-Type`);
  const csp = h['content-security-policy'] || '';
  check(csp.includes("default-src 'none'") && csp.includes("connect-src 'self'"),
        `${name}: the page comes without its Content-Security-Policy (got ${JSON.stringify(csp)})`);
  await waitState(page, 'connected');
  const status = await page.locator('#status').textContent();
  check(status.startsWith('connected'), `${name}: status line says ${JSON.stringify(status)}`);
  check(await page.getByRole('textbox', { name: 'Message', exact: true }).isEnabled(), `${name}: input disabled while connected`);
  return { page, sent };
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ['--no-sandbox', '--headless=new'],
  timeout: 30000,
});
let failed = false;
try {
  // A phone-sized window: the page is meant to be readable there.
  const context = await browser.newContext({ viewport: { width: 412, height: 640 } });
  context.setDefaultTimeout(WAIT_MS);
  // CSP violations as the page sees them (they are console errors too).
  await context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation',
                              (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  begin('first tab connects');
  const one = await openTab(context, 'tab 1');

  begin('a line client\'s line appears in the page');
  const line = await LineClient.connect(linePort);
  line.send('hello from a line client\n');
  await waitLine(one.page, 'hello from a line client');

  begin('second tab connects');
  const two = await openTab(context, 'tab 2');

  begin('a line typed in the page reaches the line client and the other tab');
  const input = one.page.getByRole('textbox', { name: 'Message', exact: true });
  await input.fill('hello from the page');
  await input.press('Enter');
  same((await line.firstLine()).toString(), 'hello from the page\n', 'what the line client received');
  await waitLine(two.page, 'hello from the page');
  await waitLine(one.page, 'you: hello from the page');
  same(await one.page.locator('#log li.me').allTextContents(), ['you: hello from the page'],
       'tab 1: own lines (class me)');
  same(await input.inputValue(), '', 'tab 1: the input after sending');

  begin('markup in a message shows as text');
  const markup = '<b>not bold</b> & <i>not italic</i>';
  line.send(markup + '\n');
  await waitLine(one.page, markup);
  same(await one.page.locator('#log li b, #log li i').count(), 0, 'tab 1: elements made from a message');

  begin('a message that is not UTF-8 shows as binary');
  line.send(Buffer.from([0xff, 0xfe, 0x41, 0x0a]));
  await waitLine(one.page, '[binary, 3 bytes]');
  await waitLine(two.page, '[binary, 3 bytes]');

  begin('the logs hold what was sent, once, in order');
  same(await logLines(one.page),
       ['hello from a line client', 'you: hello from the page', markup, '[binary, 3 bytes]'], 'tab 1: log');
  same(await logLines(two.page), ['hello from the page', markup, '[binary, 3 bytes]'], 'tab 2: log');
  same(one.sent, ['hello from the page'], 'tab 1: frames sent');
  same(two.sent, [], 'tab 2: frames sent');
  same(line.received.toString(), 'hello from the page\n', 'everything the line client received');

  begin('no console errors, failed requests or CSP violations');
  for (const [name, t] of [['tab 1', one], ['tab 2', two]]) {
    for (const v of await t.page.evaluate(() => window.__cspViolations))
      problems.push(`${name}: CSP violation: ${v}`);
  }
  check(problems.length === 0, `problems:\n  ${problems.join('\n  ')}`);

  begin(`screenshot to ${screenshot}`);
  await one.page.screenshot({ path: screenshot });

  begin('the log keeps the last 500 lines, scrolled to the end');
  line.send(Array.from({ length: 600 }, (_, i) => `line ${i + 1}\n`).join(''));
  await waitLine(one.page, 'line 600');
  const kept = await logLines(one.page);
  same([kept.length, kept[0], kept[499]], [500, 'line 101', 'line 600'], 'tab 1: log after 600 more lines');
  check(await one.page.locator('#log').evaluate((l) => l.scrollTop + l.clientHeight >= l.scrollHeight - 8),
        'tab 1: log not scrolled to its end');

  begin('SIGTERM to the daemon: the page shows the close code 1001');
  line.close();
  await two.page.close();
  process.kill(Number(daemonPid), 'SIGTERM');
  await waitState(one.page, 'closed');
  const status = await one.page.locator('#status').textContent();
  check(/^closed \(code 1001\b/.test(status), `tab 1: status line says ${JSON.stringify(status)}`);
  check(await input.isDisabled(), 'tab 1: input enabled while closed');
  say(`status line: ${status}`);
} catch (e) {
  failed = true;
  console.error(`browser-demo: FAIL: ${step}: ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
