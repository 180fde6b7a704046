// The official OpenAI client (the version pinned in package.json) against `PROGRAM --serve`.
//
//   node openai_client.mjs BASE_URL API_KEY GREEDY_TEXT
//
// BASE_URL is the server's http://HOST:PORT/v1; GREEDY_TEXT is what the program itself prints for
// "Once upon a time" with -n 32 --temp 0. Each check prints one line; the exit status is the number of
// failed checks. Run by tests/unit/check_serve_e2e.c.
import OpenAI from 'openai';

const [baseURL, apiKey, greedy] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
let failed = 0;

async function check(name, fn) {
    try {
        await fn();
        console.log(`ok   ${name}`);
    } catch (e) {
        failed++;
        console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    }
}

function expect(cond, what) {
    if (!cond) throw new Error(what);
}

await check('models.list', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    expect(models.length === 1 && typeof models[0].id === 'string' && models[0].object === 'model',
        JSON.stringify(models));
});

await check('completions.create, greedy, equals the program', async () => {
    const r = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 32,
                                                temperature: 0 });
    expect(r.object === 'text_completion', r.object);
    expect(r.choices[0].text === greedy, `text ${JSON.stringify(r.choices[0].text)}, expected ${JSON.stringify(greedy)}`);
    expect(r.choices[0].finish_reason === 'length', r.choices[0].finish_reason);
    expect(r.usage.completion_tokens === 32 && r.usage.total_tokens === r.usage.prompt_tokens + 32,
        JSON.stringify(r.usage));
});

await check('chat.completions.create', async () => {
    const r = await client.chat.completions.create({
        model: 'stories',
        messages: [{ role: 'system', content: 'You tell stories.' }, { role: 'user', content: 'Tell me one.' }],
        max_tokens: 16, temperature: 0.7, seed: 1234, logprobs: true, top_logprobs: 3,
    });
    const c = r.choices[0];
    expect(r.object === 'chat.completion' && c.message.role === 'assistant', JSON.stringify(r));
    expect(typeof c.message.content === 'string' && ['stop', 'length'].includes(c.finish_reason), JSON.stringify(c));
    expect(c.logprobs.content.length >= 1 && c.logprobs.content[0].top_logprobs.length === 3,
        JSON.stringify(c.logprobs));
    expect(r.usage.prompt_tokens > 0, JSON.stringify(r.usage));
});

await check('chat.completions.create, stream, same tokens as whole', async () => {
    const params = { model: 'stories', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 24,
                     temperature: 0.8, seed: 77 };
    const whole = await client.chat.completions.create(params);
    const stream = await client.chat.completions.create({ ...params, stream: true,
                                                          stream_options: { include_usage: true } });
    let text = '', finish = null, usage = null, chunks = 0;
    for await (const chunk of stream) {
        chunks++;
        if (chunk.usage) usage = chunk.usage;
        for (const c of chunk.choices) {
            if (c.delta.content) text += c.delta.content;
            if (c.finish_reason) finish = c.finish_reason;
        }
    }
    expect(text === whole.choices[0].message.content, `streamed ${JSON.stringify(text)}, whole ${
        JSON.stringify(whole.choices[0].message.content)}`);
    expect(finish === whole.choices[0].finish_reason, finish);
    expect(usage && usage.completion_tokens === whole.usage.completion_tokens, JSON.stringify(usage));
    expect(chunks > 3, `${chunks} chunks`);
});

await check('completions.create, stream', async () => {
    const stream = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 32,
                                                     temperature: 0, stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text === greedy, `streamed ${JSON.stringify(text)}`);
});

await check('a wrong key is refused', async () => {
    const bad = new OpenAI({ baseURL, apiKey: apiKey + 'x', maxRetries: 0 });
    try {
        await bad.models.list();
    } catch (e) {
        expect(e instanceof OpenAI.AuthenticationError && e.status === 401, `${e}`);
        return;
    }
    throw new Error('no error');
});

await check('a bad request is a BadRequestError naming the field', async () => {
    try {
        await client.chat.completions.create({ model: 'stories', messages: [{ role: 'user', content: 'x' }], n: 2 });
    } catch (e) {
        expect(e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'n', `${e} ${e.param}`);
        return;
    }
    throw new Error('no error');
});

process.exit(failed);
