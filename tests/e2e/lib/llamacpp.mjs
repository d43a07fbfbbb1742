// llama.cpp itself (the build node-llama-cpp ships) as the reference for GGUF files we export.
//
//   node llamacpp.mjs logits   MODEL.gguf IDS OUT.f32  every position's logits, float32 [T, V]
//   node llamacpp.mjs greedy   MODEL.gguf IDS N        N greedy tokens after IDS, comma-separated
//   node llamacpp.mjs tokenize MODEL.gguf TEXTFILE     ids of the file's text (special tokens
//                                                      parsed, BOS first when the model adds it)
//   node llamacpp.mjs types    MODEL.gguf              "name type dims" per tensor (node-llama-cpp's
//                                                      own GGUF reader, not ours)
//   node llamacpp.mjs meta     MODEL.gguf              "key=JSON value" per metadata key
//                                                      (node-llama-cpp's GGUF reader)
//   node llamacpp.mjs compare  REF.f32 TEST.f32 V [FROM]  mean KL(ref || test) over positions
//                                                      FROM.. (default 0), top-1 agreement, max
//                                                      |logit difference|
//   node llamacpp.mjs argmax   LOGITS.f32 V FROM       argmax ids of positions FROM.., comma-sep.
//   node llamacpp.mjs batch    JOBS                    one command per line (whitespace-separated,
//                                                      output after ">" goes to that file): one
//                                                      process and one llama.cpp start for all
//
// IDS is comma-separated token ids, or @FILE naming a file that holds them. Contexts keep the KV cache in F32 and run without flash
// attention on the CPU, so only the weights and llama.cpp's own arithmetic differ from ours.
// NODE_LLAMA_CPP names the installed package folder (tests/e2e/lib/llamacpp.sh sets it).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function nodeLlamaCpp() {
    const dir = process.env.NODE_LLAMA_CPP;
    if (!dir) throw new Error("set NODE_LLAMA_CPP to the node-llama-cpp package folder");
    return import(pathToFileURL(path.join(dir, "dist", "index.js")).href);
}

// comma-separated ids, or @FILE holding them (written earlier in the same batch)
function ids(s) {
    if (s.startsWith("@")) s = fs.readFileSync(s.slice(1), "utf8").trim();
    return s.split(",").filter((x) => x.length).map((x) => parseInt(x, 10));
}

let llamaPromise = null;
async function llama() {
    if (!llamaPromise) {
        llamaPromise = (async () => {
            const { getLlama, LlamaLogLevel } = await nodeLlamaCpp();
            return getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error,
                              progressLogs: false });
        })();
    }
    return llamaPromise;
}

async function withModel(path, fn) {
    const l = await llama();
    const model = await l.loadModel({ modelPath: path, gpuLayers: 0 });
    try {
        return await fn(model);
    } finally {
        await model.dispose();
    }
}

async function withSequence(model, n, fn) {
    const ctx = await model.createContext({
        contextSize: Math.max(256, n + 16), batchSize: Math.max(256, n + 16), sequences: 1,
        flashAttention: false, threads: 1,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    try {
        return await fn(ctx.getSequence());
    } finally {
        await ctx.dispose();
    }
}

function readF32(path) {
    const b = fs.readFileSync(path);
    return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function logSoftmax(x) {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    const l = Math.log(s) + m;
    return Float64Array.from(x, (v) => v - l);
}

const commands = {
    async logits([model, idsText, out]) {
        const toks = ids(idsText);
        return withModel(model, (m) => withSequence(m, toks.length, async (seq) => {
            const res = await seq.controlledEvaluate(toks.map((t) => [t, { generateNext: { logits: true } }]));
            const V = res[0].next.logits.size; // the full row: one logit per token id
            const buf = new Float32Array(toks.length * V).fill(NaN);
            for (let i = 0; i < toks.length; i++)
                for (const [tok, v] of res[i].next.logits) buf[i * V + tok] = v;
            if (buf.some((v) => Number.isNaN(v))) throw new Error("llama.cpp returned a partial logit row");
            fs.writeFileSync(out, Buffer.from(buf.buffer));
            return `vocab=${V} positions=${toks.length}`;
        }));
    },
    async greedy([model, idsText, nText]) {
        const toks = ids(idsText), n = parseInt(nText, 10);
        return withModel(model, (m) => withSequence(m, toks.length + n, async (seq) => {
            const got = [];
            for await (const t of seq.evaluate(toks, { temperature: 0, yieldEogToken: true })) {
                got.push(t);
                if (got.length >= n) break;
            }
            return got.join(",");
        }));
    },
    async tokenize([model, textFile]) {
        const text = fs.readFileSync(textFile, "utf8");
        return withModel(model, async (m) => {
            const toks = m.tokenize(text, true);
            if (m.tokens.shouldPrependBosToken && m.tokens.bos != null) toks.unshift(m.tokens.bos);
            return toks.join(",");
        });
    },
    async types([model]) {
        const { readGgufFileInfo, GgmlType } = await nodeLlamaCpp();
        const info = await readGgufFileInfo(model, { readTensorInfo: true, logWarnings: false });
        return (info.fullTensorInfo ?? info.tensorInfo)
            .map((t) => `${t.name} ${GgmlType[t.ggmlType]} ${t.dimensions.join("x")}`).join("\n");
    },
    async meta([model]) {
        const { readGgufFileInfo } = await nodeLlamaCpp();
        const info = await readGgufFileInfo(model, { readTensorInfo: false, logWarnings: false });
        const lines = [];
        const walk = (o, prefix) => {
            for (const [k, v] of Object.entries(o)) {
                const key = prefix ? `${prefix}.${k}` : k;
                if (v && typeof v === "object" && !Array.isArray(v)) walk(v, key);
                else lines.push(`${key}=${JSON.stringify(v)}`);
            }
        };
        walk(info.metadata, "");
        return lines.join("\n");
    },
    async compare([a, b, vText, fromText]) {
        const V = parseInt(vText, 10), start = fromText ? parseInt(fromText, 10) : 0;
        const ra = readF32(a), rb = readF32(b);
        if (ra.length !== rb.length || ra.length % V) throw new Error(`sizes ${ra.length} and ${rb.length}, V=${V}`);
        const T = ra.length / V;
        let kl = 0, top = 0, maxd = 0, n = 0;
        for (let t = start; t < T; t++) {
            const x = ra.subarray(t * V, (t + 1) * V), y = rb.subarray(t * V, (t + 1) * V);
            const lx = logSoftmax(x), ly = logSoftmax(y);
            let k = 0, ax = 0, ay = 0;
            for (let i = 0; i < V; i++) {
                k += Math.exp(lx[i]) * (lx[i] - ly[i]);
                if (x[i] > x[ax]) ax = i;
                if (y[i] > y[ay]) ay = i;
                maxd = Math.max(maxd, Math.abs(x[i] - y[i]));
            }
            kl += Math.max(k, 0);
            top += ax === ay ? 1 : 0;
            n++;
        }
        return `kl=${(kl / n).toExponential(4)} top1=${(top / n).toFixed(4)} maxdiff=${maxd.toExponential(3)} positions=${n}`;
    },
    async argmax([file, vText, fromText]) {
        const V = parseInt(vText, 10), x = readF32(file), out = [];
        for (let t = parseInt(fromText, 10); t < x.length / V; t++) {
            let a = 0;
            for (let i = 1; i < V; i++) if (x[t * V + i] > x[t * V + a]) a = i;
            out.push(a);
        }
        return out.join(",");
    },
};

async function run(cmd, args) {
    if (!commands[cmd]) throw new Error(`unknown command ${cmd}`);
    return commands[cmd](args);
}

async function main() {
    const [cmd, ...args] = process.argv.slice(2);
    if (cmd !== "batch") {
        console.log(await run(cmd, args));
    } else {
        for (const line of fs.readFileSync(args[0], "utf8").split("\n")) {
            if (!line.trim()) continue;
            const [left, outFile] = line.split(">").map((s) => s.trim());
            const [c, ...a] = left.split(/\s+/);
            const text = await run(c, a);
            if (outFile) fs.writeFileSync(outFile, text + "\n");
            else console.log(text);
        }
    }
    if (llamaPromise) await (await llamaPromise).dispose();
}

main().catch((e) => {
    console.error(`llamacpp.mjs: ${e.message}`);
    process.exit(1);
});
