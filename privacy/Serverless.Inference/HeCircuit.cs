using System.Diagnostics;
using System.Runtime.CompilerServices;
using Serverless.Privacy.Arithmetic;
using Serverless.Privacy.Ckks;

namespace Serverless.Inference;

/// <summary>
/// The encrypted forward pass of the HE-friendly CNN-LSTM over one ciphertext group (record-per-slot,
/// so every weight is a plaintext scalar and no rotation is needed). With a = 2 for a degree-2
/// convolution activation (1 for Identity), the depths below the top level are:
/// conv z (1), activation y (a), gate pre-activations p (a+1), gates i, f, g (a+3),
/// masked gates I' = m·i and F' = 1 + m(f − 1) (a+4), I'·g (a+5), suffix products of F' (a+4+⌈log2(T−1)⌉),
/// cell state c (one more), head (two more): <see cref="HeModel.LevelsRequired(int)"/>.
/// Because lstm.R = 0 the gates depend on the current visit only, so the recurrence
/// c_t = F'_t·c_(t−1) + I'_t·g_t unrolls to c = Σ_t (Π_(s>t) F'_s)·I'_t·g_t and the products are a
/// log-depth parallel scan instead of a chain. The output gate is needed only at the last real visit:
/// its pre-activation is selected first, p_o = Σ_t e_t·p_(o,t) with e_t = m_t − m_(t+1) (one-hot, as
/// real visits come first), and the sigmoid applied once. Activation constants fold into the next
/// linear layer (a = g·y + c0 with y = z² + (c1/g)·z), odd cubics are (c3·p)·(p² + c1/c3), and the head
/// folds in tanh: logit = b + Σ_j (w_j·H3·o_j·c_j)·(c_j² + H1/H3).
/// Sums of products are relinearized and rescaled once (lazy relinearization).
/// </summary>
internal sealed class HeCircuit
{
    private readonly HeWeights _w;
    private readonly Evaluator _ev;
    private readonly CkksContext _ctx;
    private readonly ParallelOptions _parallel;
    private readonly Dictionary<string, double> _timings = [];
    private readonly System.Diagnostics.Stopwatch _clock = new();

    public HeCircuit(HeWeights weights, Evaluator evaluator, int maxDegreeOfParallelism, CancellationToken cancellationToken)
    {
        _w = weights;
        _ev = evaluator;
        _ctx = evaluator.Context;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxDegreeOfParallelism), CancellationToken = cancellationToken };
    }

    /// <summary>Wall milliseconds per stage of the last <see cref="Run"/> (for the benchmark's breakdown).</summary>
    public IReadOnlyDictionary<string, double> Timings => _timings;

    /// <summary>Inputs: [t·F + f] values, then [T·F + t] masks, all fresh at the top level. Returns the logits ciphertext.</summary>
    public Ciphertext Run(Ciphertext[] inputs)
    {
        var w = _w;
        int T = w.Steps, F = w.Features, C = w.Channels, K = w.Kernel, H = w.Hidden;
        Debug.Assert(inputs.Length == T * (F + 1));
        var top = _ctx.MaxLevel;
        var (c0, c1, c2) = (w.ConvPoly[0], w.ConvPoly[1], w.ConvPoly[2]);
        var a = c2 != 0 ? 2 : 1;
        var needed = HeModel.CellDepth(T, a) + 2;
        if (top < needed)
            throw new InvalidOperationException($"cannot evaluate: the circuit needs {needed} levels, the inputs have {top}");
        _timings.Clear();

        // 1. Causal convolution (depth 1) and its activation y = z² + (c1/c2)·z (depth 2), a = gain·y + c0.
        Stage("conv");
        var gain = c2 != 0 ? c2 : c1;
        var y = new Ciphertext[T * C];
        For(T * C, u =>
        {
            int t = u / C, c = u % C;
            var xs = new List<Ciphertext>(F * K);
            var ws = new List<double>(F * K);
            for (var kk = 0; kk < K; kk++)
            {
                var src = t - (K - 1) + kk;
                if (src < 0) continue;
                for (var f = 0; f < F; f++)
                {
                    xs.Add(inputs[src * F + f]);
                    ws.Add(w.ConvWeight[(c * F + f) * K + kk]);
                }
            }
            var z = Linear(xs, ws, w.ConvBias[c], top);
            if (c2 == 0)
            {
                y[u] = z;
                return;
            }
            var sq = MulRelinRescale(z, z);
            if (c1 != 0) _ev.AddInPlace(sq, MulScalarRescale(z, c1 / c2));
            y[u] = sq;
        });

        // 2. Gate pre-activations (a+1): p = W·(gain·y + c0) + b; gates i, o, f, c.
        Stage("gate pre-activations");
        var p = new Ciphertext[T * 4 * H];
        For(T * 4 * H, u =>
        {
            int t = u / (4 * H), j = u % (4 * H);
            var xs = new List<Ciphertext>(C);
            var ws = new List<double>(C);
            var bias = w.LstmB[j];
            for (var c = 0; c < C; c++)
            {
                var wt = w.LstmW[j * C + c];
                xs.Add(y[t * C + c]);
                ws.Add(wt * gain);
                bias += wt * c0;
            }
            p[u] = Linear(xs, ws, bias, top - a);
        });
        Array.Clear(y);

        // 3. Masks m_t and the last-visit selector e_t = m_t − m_(t+1), at the gates' levels.
        Stage("masks");
        var pLevel = top - a - 1;
        var mAt = new Ciphertext[T];
        var e = new Ciphertext[T];
        For(T, t =>
        {
            mAt[t] = DownTo(inputs[T * F + t], pLevel - 2);
            var sel = inputs[T * F + t].Clone();
            if (t + 1 < T) _ev.SubInPlace(sel, inputs[T * F + t + 1]);
            e[t] = DownTo(sel, pLevel);
        });

        // 4. Gates i, f, g per (t, j) (a+3), then I' = m·i, F' = 1 + m(f − 1) (a+4), I'·g (a+5).
        Stage("gates");
        var inputGated = new Ciphertext[T * H];   // I'_t·g_t
        var forget = new Ciphertext[T * H];       // F'_t (t ≥ 1)
        For(T * H, u =>
        {
            int t = u / H, j = u % H;
            var i = Sigmoid(p[t * 4 * H + j]);
            var g = Tanh(p[t * 4 * H + 3 * H + j]);
            var iMasked = MulRelinRescale(mAt[t], i);
            inputGated[u] = MulRelinRescale(iMasked, g);
            if (t == 0) return;
            var f = Sigmoid(p[t * 4 * H + 2 * H + j]);
            var fMasked = MulRelinRescale(mAt[t], f);
            _ev.SubInPlace(fMasked, DownTo(inputs[T * F + t], fMasked.Level));
            _ev.AddScalarInPlace(fMasked, 1.0);
            forget[u] = fMasked;
        });

        // 5. Output gate at the last real visit: o = σ(Σ_t e_t·p_(o,t)) (a+4).
        Stage("output gate");
        var outGate = new Ciphertext[H];
        For(H, j =>
        {
            var sum = new Ciphertext(_ctx);
            var tmp = new Ciphertext(_ctx);
            for (var t = 0; t < T; t++)
            {
                if (t == 0) _ev.Multiply(e[t], p[t * 4 * H + H + j], sum);
                else { _ev.Multiply(e[t], p[t * 4 * H + H + j], tmp); _ev.AddInPlace(sum, tmp); }
            }
            _ev.RelinearizeInPlace(sum);
            _ev.RescaleInPlace(sum);
            outGate[j] = Sigmoid(sum);
        });
        Array.Clear(p);

        // 6. Suffix products P_t = Π_(s>t) F'_s by a Hillis–Steele scan (depth ⌈log2(T−1)⌉), then
        //    c = Σ_(t<T−1) P_t·(I'_t·g_t) + I'_(T−1)·g_(T−1).
        Stage("cell scan");
        var n = T - 1;
        var scan = new Ciphertext[H * Math.Max(n, 1)];
        if (n > 0)
        {
            For(H * n, u => scan[u] = forget[(u % n + 1) * H + u / n]); // scan[j·n + k] = F'_(k+1) of unit j
            for (var d = 1; d < n; d *= 2)
            {
                var next = new Ciphertext[scan.Length];
                var step = d;
                For(H * n, u =>
                {
                    var k = u % n;
                    next[u] = k + step < n ? MulRelinRescale(scan[u], scan[u + step]) : scan[u];
                });
                scan = next;
            }
        }
        Stage("cell sum");
        var cell = new Ciphertext[H];
        For(H, j =>
        {
            var last = inputGated[(T - 1) * H + j];
            if (n == 0)
            {
                cell[j] = last;
                return;
            }
            var level = last.Level;
            for (var k = 0; k < n; k++) level = Math.Min(level, Math.Min(scan[j * n + k].Level, inputGated[k * H + j].Level));
            var sum = new Ciphertext(_ctx);
            var tmp = new Ciphertext(_ctx);
            for (var k = 0; k < n; k++)
            {
                var target = k == 0 ? sum : tmp;
                _ev.Multiply(DownTo(scan[j * n + k], level), DownTo(inputGated[k * H + j], level), target);
                if (k > 0) _ev.AddInPlace(sum, tmp);
            }
            _ev.RelinearizeInPlace(sum);
            _ev.RescaleInPlace(sum);
            _ev.AddInPlace(sum, DownTo(last, sum.Level));
            cell[j] = sum;
        });

        // 7. Head: logit = b + Σ_j (w_j·H3·o_j·c_j)·(c_j² + H1/H3).
        Stage("head");
        var cellLevel = cell[0].Level;
        var terms = new Ciphertext[H];
        For(H, j =>
        {
            var u = MulScalarRescale(outGate[j], w.OutW[j] * HeWeights.H3);
            var v = MulRelinRescale(DownTo(u, cellLevel), cell[j]);
            var d = MulRelinRescale(cell[j], cell[j]);
            _ev.AddScalarInPlace(d, HeWeights.H1 / HeWeights.H3);
            var term = new Ciphertext(_ctx);
            _ev.Multiply(v, d, term);
            terms[j] = term;
        });
        var logit = terms[0];
        for (var j = 1; j < H; j++) _ev.AddInPlace(logit, terms[j]);
        _ev.RelinearizeInPlace(logit);
        _ev.RescaleInPlace(logit);
        _ev.AddScalarInPlace(logit, w.OutB);
        Stage(null);
        Debug.Assert(logit.Level == top - needed, $"logit at level {logit.Level}, the plan says {top - needed}");
        return logit;
    }

    private string? _stage;

    private void Stage(string? name)
    {
        if (_stage is not null) _timings[_stage] = _clock.Elapsed.TotalMilliseconds;
        _stage = name;
        _clock.Restart();
    }

    /// <summary>σ(p) ≈ S0 + (S3·p)·(p² + S1/S3): two levels.</summary>
    private Ciphertext Sigmoid(Ciphertext p)
    {
        var r = OddCubic(p, HeWeights.S1, HeWeights.S3);
        _ev.AddScalarInPlace(r, HeWeights.S0);
        return r;
    }

    /// <summary>tanh(p) ≈ (H3·p)·(p² + H1/H3): two levels.</summary>
    private Ciphertext Tanh(Ciphertext p) => OddCubic(p, HeWeights.H1, HeWeights.H3);

    private Ciphertext OddCubic(Ciphertext p, double k1, double k3)
    {
        var sq = MulRelinRescale(p, p);
        _ev.AddScalarInPlace(sq, k1 / k3);
        return MulRelinRescale(MulScalarRescale(p, k3), sq);
    }

    private void For(int count, Action<int> body) => Parallel.For(0, count, _parallel, body);

    private Ciphertext MulRelinRescale(Ciphertext a, Ciphertext b)
    {
        var r = new Ciphertext(_ctx);
        if (a.Level != b.Level)
        {
            var level = Math.Min(a.Level, b.Level);
            a = DownTo(a, level);
            b = DownTo(b, level);
        }
        _ev.MultiplyRelinearizeRescale(a, b, r);
        return r;
    }

    private Ciphertext MulScalarRescale(Ciphertext a, double value)
    {
        var r = new Ciphertext(_ctx);
        _ev.MultiplyScalar(a, value, r);
        _ev.RescaleInPlace(r);
        return r;
    }

    /// <summary>The ciphertext at <paramref name="level"/> (itself when already there).</summary>
    private Ciphertext DownTo(Ciphertext a, int level)
    {
        if (a.Level == level) return a;
        var r = new Ciphertext(_ctx);
        _ev.ModSwitchTo(a, level, r);
        return r;
    }

    /// <summary>
    /// Σ_j w_j·x_j + bias, rescaled: one level down, at the standard scale. The hot loop: each weight
    /// is one RNS residue per prime (with its Shoup quotient), products accumulate lazily in 64 bits
    /// and are reduced once per limb, no plaintext is encoded and nothing is allocated per term.
    /// </summary>
    private Ciphertext Linear(List<Ciphertext> xs, List<double> ws, double bias, int level)
    {
        Debug.Assert(xs.Count == ws.Count && xs.Count > 0);
        var scale = xs[0].Scale;
        foreach (var x in xs)
        {
            if (x.Level != level || x.Size != 2 || Math.Abs(x.Scale / scale - 1) > 1e-12)
                throw new InvalidOperationException($"cannot evaluate a linear layer: input {x} is not at level {level} with the common scale");
        }
        // The weights' scale makes the rescale by q_level land on the standard scale of level − 1.
        var constScale = _ctx.ScaleAt(level - 1) * _ctx.Moduli[level].Value / scale;
        var result = new Ciphertext(_ctx, 2, level, scale * constScale);
        var n = _ctx.N;
        var scaled = new double[ws.Count];
        for (var j = 0; j < scaled.Length; j++) scaled[j] = Math.Round(ws[j] * constScale);
        var biasScaled = Math.Round(bias * scale * constScale);
        var wRes = new ulong[ws.Count];
        var wShoup = new ulong[ws.Count];
        for (var i = 0; i <= level; i++)
        {
            var m = _ctx.Moduli[i];
            var q = m.Value;
            for (var j = 0; j < wRes.Length; j++)
            {
                wRes[j] = Encoder.ScaledToResidue(scaled[j], m);
                wShoup[j] = m.ShoupOf(wRes[j]);
            }
            // Lazy products are below 2q; this many fit in 64 bits before a reduction is due.
            var perReduction = (int)Math.Min(int.MaxValue, (ulong.MaxValue - q) / (2 * q));
            for (var k = 0; k < 2; k++)
            {
                var acc = result.Limb(k, i);
                acc.Clear();
                var pending = 0;
                for (var j = 0; j < xs.Count; j++)
                {
                    if (wRes[j] == 0) continue;
                    if (pending == perReduction)
                    {
                        ReduceInPlace(acc, m);
                        pending = 1;
                    }
                    MulAccumulate(xs[j].Limb(k, i), wRes[j], wShoup[j], q, acc);
                    pending++;
                }
                ReduceInPlace(acc, m);
            }
            LimbOps.AddScalar(result.Limb(0, i), Encoder.ScaledToResidue(biasScaled, m), result.Limb(0, i), q);
        }
        _ev.RescaleInPlace(result);
        return result;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MulAccumulate(ReadOnlySpan<ulong> x, ulong w, ulong wShoup, ulong q, Span<ulong> acc)
    {
        Debug.Assert(x.Length == acc.Length);
        for (var k = 0; k < acc.Length; k++) acc[k] += Modulus.MulShoupLazy(x[k], w, wShoup, q);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ReduceInPlace(Span<ulong> acc, Modulus m)
    {
        for (var k = 0; k < acc.Length; k++) acc[k] = m.Reduce(acc[k]);
    }
}
