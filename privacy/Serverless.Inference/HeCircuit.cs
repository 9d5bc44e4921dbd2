using System.Diagnostics;
using System.Runtime.CompilerServices;
using Serverless.Privacy.Arithmetic;
using Serverless.Privacy.Ckks;

namespace Serverless.Inference;

/// <summary>
/// The encrypted forward pass of the HE-friendly CNN-LSTM over one ciphertext group (record-per-slot,
/// so every weight is a plaintext scalar and no rotation is needed). Level schedule for a window of T
/// visits from the top level L (the plan's 8 + T levels):
/// conv (L−1) → degree-2 activation (L−2) → gate pre-activations (L−3) → degree-3 gates (L−5) →
/// masked gates (L−6) → cell state c_t (L−7−t) → head with the tanh polynomial folded in (L−8−T).
/// Activation constants are folded into the next linear layer (a = g·y + c0 with y = z² + (c1/g)·z),
/// and odd cubics are evaluated as (c3·p)·(p² + c1/c3): one level fewer than Horner.
/// The recurrence is the cell state: c_t = F'_t·c_{t−1} + I'_t·g_t with F' = 1 + m_t(f_t − 1),
/// I' = m_t·i_t (m_t the visit mask), so a padded visit carries the state as the plaintext LSTM does;
/// h = o·tanh(c) only at the last real visit (selected by e_t = m_t − m_{t+1}).
/// </summary>
internal sealed class HeCircuit
{
    private readonly HeWeights _w;
    private readonly Evaluator _ev;
    private readonly CkksContext _ctx;
    private readonly ParallelOptions _parallel;

    public HeCircuit(HeWeights weights, Evaluator evaluator, int maxDegreeOfParallelism, CancellationToken cancellationToken)
    {
        _w = weights;
        _ev = evaluator;
        _ctx = evaluator.Context;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxDegreeOfParallelism), CancellationToken = cancellationToken };
    }

    /// <summary>Inputs: [t·F + f] values, then [T·F + t] masks, all fresh at the top level. Returns the logits ciphertext.</summary>
    public Ciphertext Run(Ciphertext[] inputs)
    {
        var w = _w;
        int T = w.Steps, F = w.Features, C = w.Channels, K = w.Kernel, H = w.Hidden;
        Debug.Assert(inputs.Length == T * (F + 1));
        var top = _ctx.MaxLevel;
        if (top < HeModel.LevelsRequired(T))
            throw new InvalidOperationException($"cannot evaluate: the circuit needs {HeModel.LevelsRequired(T)} levels, the inputs have {top}");

        // 1. Causal convolution (L−1) and its degree-2 activation y = z² + (c1/c2)·z (L−2); a = gain·y + c0.
        var (c0, c1, c2) = (w.ConvPoly[0], w.ConvPoly[1], w.ConvPoly[2]);
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
            Ciphertext a;
            if (c2 != 0)
            {
                a = MulRelinRescale(z, z);
                if (c1 != 0) _ev.AddInPlace(a, DownTo(MulScalarRescale(z, c1 / c2), a.Level));
            }
            else a = DownTo(z, top - 2);
            y[u] = a;
        });

        // 2. Gate pre-activations (L−3): p = W·(gain·y + c0) + b, gates i, o, f, c.
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
            p[u] = Linear(xs, ws, bias, top - 2);
        });

        // 3. Gates (L−5): sigmoid ≈ S0 + (S3·p)(p² + S1/S3), tanh ≈ (H3·p)(p² + H1/H3).
        var act = new Ciphertext[T * 4 * H];
        For(T * 4 * H, u =>
        {
            var j = u % (4 * H);
            var isCell = j >= 3 * H;
            var (k1, k3) = isCell ? (HeWeights.H1, HeWeights.H3) : (HeWeights.S1, HeWeights.S3);
            var sq = MulRelinRescale(p[u], p[u]);
            _ev.AddScalarInPlace(sq, k1 / k3);
            var lead = MulScalarRescale(p[u], k3);
            var r = MulRelinRescale(lead, sq);
            if (!isCell) _ev.AddScalarInPlace(r, HeWeights.S0);
            act[u] = r;
        });
        Array.Clear(p);

        // 4. Masks: m_t at L−5 and L−6; e_t = m_t − m_{t+1} marks the last real visit.
        var gateLevel = top - 5;
        var m5 = new Ciphertext[T];
        var m6 = new Ciphertext[T];
        For(T, t =>
        {
            m5[t] = DownTo(inputs[T * F + t], gateLevel);
            m6[t] = DownTo(inputs[T * F + t], gateLevel - 1);
        });
        var e = new Ciphertext[T];
        for (var t = 0; t < T; t++)
        {
            e[t] = m5[t].Clone();
            if (t + 1 < T) _ev.SubInPlace(e[t], m5[t + 1]);
        }

        // 5. Masked gates (L−6), the selected output gate o_last (L−6), and the cell recurrence.
        var cell = new Ciphertext[H];
        var oLast = new Ciphertext[H];
        For(H, j =>
        {
            Ciphertext? o = null;
            var tmp = new Ciphertext(_ctx);
            for (var t = 0; t < T; t++)
            {
                var og = act[t * 4 * H + H + j];
                if (o is null) { o = new Ciphertext(_ctx); _ev.Multiply(e[t], og, o); }
                else { _ev.Multiply(e[t], og, tmp); _ev.AddInPlace(o, tmp); }
            }
            _ev.RelinearizeInPlace(o!);
            _ev.RescaleInPlace(o!);
            oLast[j] = o!;

            Ciphertext? c = null;
            for (var t = 0; t < T; t++)
            {
                var i = act[t * 4 * H + j];
                var f = act[t * 4 * H + 2 * H + j];
                var g = act[t * 4 * H + 3 * H + j];
                var iMasked = MulRelinRescale(m5[t], i);              // I' = m·i
                if (c is null)
                {
                    c = MulRelinRescale(iMasked, DownTo(g, iMasked.Level)); // c_0 = I'·g
                    continue;
                }
                var fMasked = MulRelinRescale(m5[t], f);              // F' = m·f − m + 1
                _ev.SubInPlace(fMasked, m6[t]);
                _ev.AddScalarInPlace(fMasked, 1.0);
                var level = c.Level;
                var sum = new Ciphertext(_ctx);
                _ev.Multiply(DownTo(fMasked, level), c, sum);
                _ev.Multiply(DownTo(iMasked, level), DownTo(g, level), tmp);
                _ev.AddInPlace(sum, tmp);
                _ev.RelinearizeInPlace(sum);
                _ev.RescaleInPlace(sum);
                c = sum;
            }
            cell[j] = c!;
        });

        // 6. Head: logit = b + Σ_j w_j·o_j·tanh(c_j) = b + Σ_j (w_j·H3·o_j·c_j)·(c_j² + H1/H3).
        var cellLevel = cell[0].Level;
        var terms = new Ciphertext[H];
        For(H, j =>
        {
            var u = MulScalarRescale(oLast[j], w.OutW[j] * HeWeights.H3);
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
        Debug.Assert(logit.Level == top - HeModel.LevelsRequired(T));
        return logit;
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
