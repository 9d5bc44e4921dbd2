// Peer benchmark: the same CKKS operations as bench/Suites/CkksSuite.cs, with node-seal
// (Microsoft SEAL 4.1 compiled to WebAssembly). Prints one JSON object of medians in µs.
// usage: node seal-ckks.mjs <node-seal dir> <iterations> <N:bits,bits,...> [<N:bits,...> ...]
import { pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [, , sealDir, iterArg, ...sets] = process.argv;
const pkg = JSON.parse(readFileSync(path.join(sealDir, 'package.json'), 'utf8'));
const major = Number(pkg.version.split('.')[0]);
const iterations = Number(iterArg);
let seal;
if (major >= 7) {
  // v7 exposes SEAL's Emscripten bindings directly (needs Wasm exception refs: Node 22+).
  const { default: SEAL } = await import(pathToFileURL(path.join(sealDir, 'dist', 'index_throws.js')).href);
  seal = await SEAL();
} else {
  // v6 wraps the bindings in factory functions; same SEAL 4.1 core.
  const require = createRequire(import.meta.url);
  seal = await require(path.join(sealDir, pkg.main))();
}
const api = major >= 7
  ? {
      params: (n, bits) => {
        const p = new seal.EncryptionParameters(seal.SchemeType.ckks);
        p.setPolyModulusDegree(n);
        p.setCoeffModulus(seal.CoeffModulus.Create(n, Int32Array.from(bits)));
        return new seal.SEALContext(p, true, seal.SecLevelType.tc128);
      },
      keygen: (c) => new seal.KeyGenerator(c),
      galois: (kg) => kg.createGaloisKeysWithSteps(Int32Array.from([1])),
      encoder: (c) => new seal.CKKSEncoder(c),
      encryptor: (c, pk) => new seal.Encryptor(c, pk),
      decryptor: (c, sk) => new seal.Decryptor(c, sk),
      evaluator: (c) => new seal.Evaluator(c),
      plain: () => api.plain(),
      cipher: () => api.cipher(),
    }
  : {
      params: (n, bits) => {
        const p = seal.EncryptionParameters(seal.SchemeType.ckks);
        p.setPolyModulusDegree(n);
        p.setCoeffModulus(seal.CoeffModulus.Create(n, Int32Array.from(bits)));
        return seal.Context(p, true, seal.SecurityLevel.tc128);
      },
      keygen: (c) => seal.KeyGenerator(c),
      galois: (kg) => kg.createGaloisKeys(Int32Array.from([1])),
      encoder: (c) => seal.CKKSEncoder(c),
      encryptor: (c, pk) => seal.Encryptor(c, pk),
      decryptor: (c, sk) => seal.Decryptor(c, sk),
      evaluator: (c) => seal.Evaluator(c),
      plain: () => seal.PlainText(),
      cipher: () => seal.CipherText(),
    };

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}
function time(fn, warmup = 2) {
  for (let i = 0; i < warmup; i++) fn();
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return median(samples);
}

const out = {};
for (const set of sets) {
  const [nText, bitsText] = set.split(':');
  const n = Number(nText);
  const bits = bitsText.split(',').map(Number);
  const context = api.params(n, bits);
  const keygen = api.keygen(context);
  const pk = keygen.createPublicKey();
  const sk = keygen.secretKey();
  const relin = keygen.createRelinKeys();
  const galois = api.galois(keygen);
  const encoder = api.encoder(context);
  const encryptor = api.encryptor(context, pk);
  const decryptor = api.decryptor(context, sk);
  const evaluator = api.evaluator(context);
  const scale = 2 ** 40;
  const slots = typeof encoder.slotCount === "function" ? encoder.slotCount() : encoder.slotCount;
  const values = Float64Array.from({ length: slots }, (_, i) => Math.sin(i));
  const pt = api.plain();
  const a = api.cipher();
  const b = api.cipher();
  const dst = api.cipher();
  const prod = api.cipher();
  encoder.encode(values, scale, pt);
  encryptor.encrypt(pt, a);
  encryptor.encrypt(pt, b);
  evaluator.multiply(a, b, prod);
  const r = {};
  r.encode_us = time(() => encoder.encode(values, scale, pt));
  r.encrypt_us = time(() => encryptor.encrypt(pt, dst));
  r.add_us = time(() => evaluator.add(a, b, dst));
  r.mul_us = time(() => evaluator.multiply(a, b, dst));
  r.relin_us = time(() => evaluator.relinearize(prod, relin, dst));
  const relined = api.cipher();
  evaluator.relinearize(prod, relin, relined);
  r.rescale_us = time(() => evaluator.rescaleToNext(relined, dst));
  r.rotate_us = time(() => evaluator.rotateVector(a, 1, galois, dst));
  r.decrypt_us = time(() => decryptor.decrypt(a, pt));
  out[`n${n}`] = r;
}
out.version = pkg.version;
console.log(JSON.stringify(out));
