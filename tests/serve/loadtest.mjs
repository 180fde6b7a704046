// A load test for an OpenAI-compatible server on loopback: node's own http module, no dependencies.
//
//   node loadtest.mjs --url http://127.0.0.1:PORT --clients N --seconds S [--max-tokens M] [--key KEY]
//                     [--pid PID] [--label NAME] [--json FILE]
//
// N clients each send streaming /v1/completions requests one after another for S seconds (a request
// under way when the time is up is finished, not cut). Every request has its own prompt (one of a few
// story openings and a number), max_tokens M, temperature 0.8 and a seed. For each request it measures
// the time to the first token (from sending to the first chunk with text) and the time between chunks
// with text after that (per-token latency: both servers send one chunk per token), and counts the
// generated tokens from the usage the last chunk reports. A request is an error when its status is not
// 200, its stream is cut, or it reports no usage. With --pid it reads the server's resident memory
// (VmRSS) at the start, once warm (after a tenth of the run), at its peak and at the end. It prints one summary (and writes it as JSON with --json).
import http from 'node:http';
import fs from 'node:fs';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
    return acc;
}, []));
const url = new URL(args.url);
const clients = Number(args.clients ?? 64);
const seconds = Number(args.seconds ?? 600);
const maxTokens = Number(args['max-tokens'] ?? 64);
const label = args.label ?? url.host;
// A connection per request: llama-server closes a connection after a streamed answer, and a client that
// reused it would count an error that is not the server's.
const agent = new http.Agent({ keepAlive: false, maxSockets: clients });

const openings = [
    'Once upon a time', 'One day, a little girl named Lily', 'Tom and his dog', 'The sun was shining and',
    'In a big forest there lived', 'Ben wanted to play with his ball but', 'There was a kind old man who',
    'Sue found a shiny red box', 'The cat and the bird were friends.', 'It was a rainy day, so',
];

function rssKiB(pid) {
    try {
        const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m ? Number(m[1]) : null;
    } catch {
        return null;
    }
}

function percentile(sorted, p) {
    if (!sorted.length) return null;
    return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))];
}

// One streaming request; resolves to { ok, ttft, gaps[], tokens }.
function request(n) {
    const body = JSON.stringify({
        model: 'any', prompt: `${openings[n % openings.length]} (${n})`, max_tokens: maxTokens, temperature: 0.8,
        seed: n, stream: true, stream_options: { include_usage: true },
    });
    const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
    if (args.key) headers.Authorization = `Bearer ${args.key}`;
    return new Promise((resolve) => {
        const t0 = performance.now();
        let last = null, ttft = null, tokens = null, done = false, buf = '';
        const gaps = [];
        const req = http.request({ host: url.hostname, port: url.port, path: '/v1/completions', method: 'POST',
                                   headers, agent }, (res) => {
            res.setEncoding('utf8');
            res.on('data', (d) => {
                buf += d;
                let i;
                while ((i = buf.indexOf('\n\n')) >= 0) {
                    const ev = buf.slice(0, i);
                    buf = buf.slice(i + 2);
                    if (!ev.startsWith('data: ')) continue;
                    const data = ev.slice(6);
                    if (data === '[DONE]') { done = true; continue; }
                    let j;
                    try { j = JSON.parse(data); } catch { continue; }
                    if (j.usage) tokens = j.usage.completion_tokens;
                    const text = j.choices && j.choices[0] ? j.choices[0].text : '';
                    if (text) {
                        const now = performance.now();
                        if (ttft === null) ttft = now - t0;
                        else gaps.push(now - last);
                        last = now;
                    }
                }
            });
            res.on('end', () => resolve({ ok: res.statusCode === 200 && done && tokens !== null, ttft, gaps,
                                          tokens: tokens ?? 0, status: res.statusCode }));
            res.on('error', () => resolve({ ok: false, gaps, tokens: 0 }));
        });
        req.on('error', () => resolve({ ok: false, gaps, tokens: 0 }));
        req.end(body);
    });
}

const pid = args.pid ? Number(args.pid) : null;
const rssStart = pid ? rssKiB(pid) : null;
const start = performance.now();
const end = start + seconds * 1000;
// Resident memory once the load has warmed the server up (a tenth of the run), and its peak.
let rssWarm = null, rssPeak = rssStart;
const sampler = pid ? setInterval(() => {
    const r = rssKiB(pid);
    if (r !== null && r > rssPeak) rssPeak = r;
    if (rssWarm === null && performance.now() - start >= seconds * 100) rssWarm = r;
}, 250) : null;
let next = 0, requests = 0, errors = 0, tokens = 0;
const ttfts = [], gaps = [], statuses = {};

async function client() {
    while (performance.now() < end) {
        const r = await request(next++);
        requests++;
        if (!r.ok) {
            errors++;
            statuses[r.status ?? 'closed'] = (statuses[r.status ?? 'closed'] ?? 0) + 1;
            continue;
        }
        tokens += r.tokens;
        if (r.ttft !== null) ttfts.push(r.ttft);
        for (const g of r.gaps) gaps.push(g);
    }
}

await Promise.all(Array.from({ length: clients }, client));
const elapsed = (performance.now() - start) / 1000;
const rssEnd = pid ? rssKiB(pid) : null;
if (sampler) clearInterval(sampler);
ttfts.sort((a, b) => a - b);
gaps.sort((a, b) => a - b);
const summary = {
    label, clients, seconds: Number(elapsed.toFixed(1)), max_tokens: maxTokens, requests, errors,
    error_statuses: statuses, tokens, tokens_per_s: Number((tokens / elapsed).toFixed(1)),
    ttft_ms: { p50: percentile(ttfts, 50), p99: percentile(ttfts, 99) },
    token_latency_ms: { p50: percentile(gaps, 50), p99: percentile(gaps, 99) },
    rss_kib: { start: rssStart, warm: rssWarm, peak: rssPeak, end: rssEnd },
};
for (const k of ['ttft_ms', 'token_latency_ms'])
    for (const p of ['p50', 'p99'])
        if (summary[k][p] !== null) summary[k][p] = Number(summary[k][p].toFixed(1));
console.log(`${label}: ${clients} clients, ${summary.seconds} s: ${requests} requests, ${errors} errors, ${tokens} tokens `
            + `(${summary.tokens_per_s} tokens/s); time to first token p50 ${summary.ttft_ms.p50} ms, p99 `
            + `${summary.ttft_ms.p99} ms; per token p50 ${summary.token_latency_ms.p50} ms, p99 `
            + `${summary.token_latency_ms.p99} ms` + (pid ? `; RSS ${rssStart} KiB at the start, ${rssWarm} KiB warm, ${rssEnd} KiB at the end (peak ${rssPeak})`
                   : ''));
if (args.json) fs.writeFileSync(args.json, JSON.stringify(summary, null, 2) + '\n');
agent.destroy();
