// llama.cpp itself (the build node-llama-cpp ships) as the reference for GGUF files we export.
//
//   node llamacpp.mjs logits  MODEL.gguf IDS OUT.f32   every position's logits, float32 [T, V]
//   node llamacpp.mjs greedy  MODEL.gguf IDS N         N greedy tokens after IDS, comma-separated
//   node llamacpp.mjs tokenize MODEL.gguf TEXT         ids of TEXT (special tokens parsed, BOS
//                                                     added when the file says add_bos_token)
//   node llamacpp.mjs types   MODEL.gguf               "name type" per tensor (node-llama-cpp's
//                                                     own GGUF reader, not ours)
//   node llamacpp.mjs compare REF.f32 TEST.f32 V [FROM] mean KL(ref || test) over positions
//                                                     FROM.. (default 0), top-1 agreement,
//                                                     max |logit difference|
//
// IDS is comma-separated token ids. The context keeps the KV cache in F32 and runs without flash
// attention on the CPU, so only the weights and llama.cpp's own arithmetic differ from ours.
// Run with NODE_PATH or from a folder where `node-llama-cpp` resolves (see llamacpp.sh).
import fs from "node:fs";

const [cmd, ...args] = process.argv.slice(2);

function ids(s) {
    return s.split(",").filter((x) => x.length).map((x) => parseInt(x, 10));
}

async function load(path) {
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error,
                                   progressLogs: false });
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    return { llama, model };
}

async function context(model, n) {
    const ctx = await model.createContext({
        contextSize: Math.max(256, n + 16), batchSize: Math.max(256, n + 16), sequences: 1,
        flashAttention: false, threads: 2,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    return { ctx, seq: ctx.getSequence() };
}

function softmaxLog(x) {
    let m = -Infinity;
    for (const v of x) m = Math.max(m, v);
    let s = 0;
    for (const v of x) s += Math.exp(v - m);
    const l = Math.log(s) + m;
    return Float64Array.from(x, (v) => v - l);
}

async function main() {
    if (cmd === "compare") {
        const [a, b, vs, from] = args;
        const V = parseInt(vs, 10), start = from ? parseInt(from, 10) : 0;
        const ra = new Float32Array(fs.readFileSync(a).buffer.slice(0));
        const rb = new Float32Array(fs.readFileSync(b).buffer.slice(0));
        if (ra.length !== rb.length || ra.length % V) throw new Error(`sizes ${ra.length} ${rb.length} V=${V}`);
        const T = ra.length / V;
        let kl = 0, top = 0, maxd = 0, n = 0;
        for (let t = start; t < T; t++) {
            const x = ra.subarray(t * V, (t + 1) * V), y = rb.subarray(t * V, (t + 1) * V);
            const lx = softmaxLog(x), ly = softmaxLog(y);
            let k = 0, ax = 0, ay = 0;
            for (let i = 0; i < V; i++) {
                k += Math.exp(lx[i]) * (lx[i] - ly[i]);
                if (x[i] > x[ax]) ax = i;
                if (y[i] > y[ay]) ay = i;
                maxd = Math.max(maxd, Math.abs(x[i] - y[i]));
            }
            kl += k;
            top += ax === ay ? 1 : 0;
            n++;
        }
        console.log(`kl=${(kl / n).toExponential(4)} top1=${(top / n).toFixed(4)} maxdiff=${maxd.toExponential(3)} positions=${n}`);
        return;
    }
    if (cmd === "types") {
        const { readGgufFileInfo } = await import("node-llama-cpp");
        const info = await readGgufFileInfo(args[0], { readTensorInfo: true, logWarnings: false });
        const { GgmlType } = await import("node-llama-cpp");
        for (const t of info.fullTensorInfo ?? info.tensorInfo)
            console.log(`${t.name} ${GgmlType[t.ggmlType]} ${t.dimensions.join("x")}`);
        return;
    }
    const { llama, model } = await load(args[0]);
    try {
        if (cmd === "tokenize") {
            console.log(model.tokenize(args[1], true).join(","));
        } else if (cmd === "logits") {
            const toks = ids(args[1]);
            const { ctx, seq } = await context(model, toks.length);
            const input = toks.map((t) => [t, { generateNext: { logits: true } }]);
            const res = await seq.controlledEvaluate(input);
            const V = res[0].next.logits.size; /* the full row: one logit per token id */
            const out = new Float32Array(toks.length * V).fill(NaN);
            for (let i = 0; i < toks.length; i++)
                for (const [tok, v] of res[i].next.logits) out[i * V + tok] = v;
            if (out.some((v) => Number.isNaN(v))) throw new Error("llama.cpp returned a partial logit row");
            fs.writeFileSync(args[2], Buffer.from(out.buffer));
            console.log(`vocab=${V} positions=${toks.length}`);
            await ctx.dispose();
        } else if (cmd === "greedy") {
            const toks = ids(args[1]), n = parseInt(args[2], 10);
            const { ctx, seq } = await context(model, toks.length + n);
            const got = [];
            for await (const t of seq.evaluate(toks, { temperature: 0, yieldEogToken: true })) {
                got.push(t);
                if (got.length >= n) break;
            }
            console.log(got.join(","));
            await ctx.dispose();
        } else {
            throw new Error(`unknown command ${cmd}`);
        }
    } finally {
        await model.dispose();
        await llama.dispose();
    }
}

main().catch((e) => {
    console.error(`llamacpp.mjs ${cmd}: ${e.message}`);
    process.exit(1);
});
