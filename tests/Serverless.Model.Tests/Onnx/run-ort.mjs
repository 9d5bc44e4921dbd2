// Runs an ONNX model in the real ONNX Runtime (npm onnxruntime-node) on records from a binary file.
//   node run-ort.mjs MODEL.onnx INPUT.bin OUTPUT.bin [REPEATS]
// INPUT.bin (little-endian): int32 batch, int32 steps, int32 features,
//   float32 features[batch*steps*features], float32 mask[batch*steps]
// OUTPUT.bin: int32 batch, int32 outputs, float32 probabilities[batch*outputs]
// Prints one JSON line: {"records":..., "repeats":..., "seconds":..., "records_per_s":...}; the timing
// covers session.run only (after one warm-up run), not process start or model load.
// Finds onnxruntime-node through ONNXRUNTIME_NODE_DIR.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const dir = process.env.ONNXRUNTIME_NODE_DIR;
if (!dir) {
  console.error('ONNXRUNTIME_NODE_DIR is not set');
  process.exit(2);
}
const ort = require(dir);
const [modelPath, inputPath, outputPath, repeatsArg] = process.argv.slice(2);
if (!modelPath || !inputPath || !outputPath) {
  console.error('usage: node run-ort.mjs MODEL.onnx INPUT.bin OUTPUT.bin [REPEATS]');
  process.exit(2);
}
const repeats = Math.max(1, Number.parseInt(repeatsArg ?? '1', 10));

const input = readFileSync(inputPath);
const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
const batch = view.getInt32(0, true);
const steps = view.getInt32(4, true);
const features = view.getInt32(8, true);
const nFeatures = batch * steps * features;
const nMask = batch * steps;
if (input.byteLength !== 12 + 4 * (nFeatures + nMask)) {
  console.error(`input file has ${input.byteLength} bytes, expected ${12 + 4 * (nFeatures + nMask)}`);
  process.exit(2);
}
const floats = new Float32Array(input.buffer.slice(input.byteOffset + 12, input.byteOffset + input.byteLength));
const featureData = floats.subarray(0, nFeatures);
const maskData = floats.subarray(nFeatures, nFeatures + nMask);

const session = await ort.InferenceSession.create(modelPath, {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});
const feeds = {
  features: new ort.Tensor('float32', featureData, [batch, steps, features]),
  mask: new ort.Tensor('float32', maskData, [batch, steps]),
};
let result = await session.run(feeds); // warm-up, and the result we write
const start = process.hrtime.bigint();
for (let i = 0; i < repeats; i++) result = await session.run(feeds);
const seconds = Number(process.hrtime.bigint() - start) / 1e9;

const probs = result.probabilities;
const outputs = probs.dims[1];
const out = Buffer.alloc(8 + 4 * probs.data.length);
out.writeInt32LE(probs.dims[0], 0);
out.writeInt32LE(outputs, 4);
for (let i = 0; i < probs.data.length; i++) out.writeFloatLE(probs.data[i], 8 + 4 * i);
writeFileSync(outputPath, out);
console.log(JSON.stringify({ records: batch, repeats, seconds, records_per_s: (batch * repeats) / seconds }));
