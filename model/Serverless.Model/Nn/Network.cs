using System.Diagnostics;
using System.Numerics;
using System.Numerics.Tensors;

namespace Serverless.Model.Nn;

/// <summary>
/// Forward and backward passes (backpropagation through time) of the three architectures, generic in the
/// number type so gradient checks can run in double while training runs in float. Inputs are
/// batch-major <c>x[B, T, F]</c> and <c>mask[B, T]</c>; internally the convolution output is time-major
/// (<c>[T, B, C]</c>) so that each LSTM step reads one contiguous block.
/// LSTM gates follow ONNX's order (input, output, forget, cell) so the weights export unchanged.
/// </summary>
internal sealed class Network<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private readonly ModelConfig _c;
    private readonly int _f, _steps, _k, _ch, _h, _hh, _o, _d;
    private readonly int _convW = -1, _convB = -1, _lstmW = -1, _lstmR = -1, _lstmB = -1, _hidW = -1, _hidB = -1, _outW, _outB;

    public Network(ModelConfig config)
    {
        _c = config.Validated();
        Layout = ModelLayout.Build(_c);
        _f = _c.Features; _steps = _c.Steps; _k = _c.KernelSize; _ch = _c.ConvChannels; _h = _c.LstmHidden;
        _hh = _c.HeadHidden; _o = _c.Outputs;
        _d = ModelLayout.HeadInputWidth(_c);
        if (_c.Architecture != ArchitectureKind.LastVisitLogistic)
        {
            _convW = Layout[ModelLayout.ConvWeight].Offset;
            _convB = Layout[ModelLayout.ConvBias].Offset;
        }
        if (_c.Architecture == ArchitectureKind.CnnLstm)
        {
            _lstmW = Layout[ModelLayout.LstmW].Offset;
            _lstmR = Layout[ModelLayout.LstmR].Offset;
            _lstmB = Layout[ModelLayout.LstmB].Offset;
        }
        if (_hh > 0)
        {
            _hidW = Layout[ModelLayout.HiddenWeight].Offset;
            _hidB = Layout[ModelLayout.HiddenBias].Offset;
        }
        _outW = Layout[ModelLayout.OutputWeight].Offset;
        _outB = Layout[ModelLayout.OutputBias].Offset;
    }

    public ModelConfig Config => _c;
    public ParameterLayout Layout { get; }

    public Workspace<T> CreateWorkspace(int maxBatch) => new(_c, maxBatch);

    /// <summary>Fills <c>ws.Probabilities[batch, Outputs]</c> (and keeps the activations for <see cref="Backward"/>).</summary>
    public void Forward(ReadOnlySpan<T> p, ReadOnlySpan<T> x, ReadOnlySpan<T> mask, int batch, Workspace<T> ws)
    {
        Debug.Assert(p.Length == Layout.TotalLength);
        Debug.Assert(x.Length >= batch * _steps * _f && mask.Length >= batch * _steps);
        if (batch > ws.MaxBatch) throw new ArgumentOutOfRangeException(nameof(batch), "batch larger than the workspace");
        var headIn = ws.HeadIn.AsSpan(0, batch * _d);
        switch (_c.Architecture)
        {
            case ArchitectureKind.CnnLstm:
                ConvForward(p, x, batch, ws);
                LstmForward(p, mask, batch, ws);
                ws.Hidden.AsSpan(_steps * batch * _h, batch * _h).CopyTo(headIn);
                break;
            case ArchitectureKind.CnnOnly:
                ConvForward(p, x, batch, ws);
                PoolForward(mask, batch, ws, headIn);
                break;
            default:
                for (var b = 0; b < batch; b++)
                {
                    var last = LastIndex(mask.Slice(b * _steps, _steps));
                    ws.LastIndex[b] = last;
                    x.Slice((b * _steps + last) * _f, _f).CopyTo(headIn.Slice(b * _d, _d));
                }
                break;
        }
        HeadForward(p, batch, ws);
    }

    /// <summary>Mean cross-entropy of the last forward pass against <paramref name="labels"/>.</summary>
    public T Loss(ReadOnlySpan<int> labels, int batch, Workspace<T> ws)
    {
        var total = T.Zero;
        var logits = ws.Logits;
        for (var b = 0; b < batch; b++)
        {
            if (_c.Task == TaskKind.Binary)
            {
                var z = logits[b];
                var y = labels[b] == 1 ? T.One : T.Zero;
                // softplus(z) - y z, computed without overflow.
                total += T.Max(z, T.Zero) - z * y + T.Log(T.One + T.Exp(-T.Abs(z)));
            }
            else
            {
                var row = logits.AsSpan(b * _o, _o);
                var max = TensorPrimitives.Max<T>(row);
                var sum = T.Zero;
                for (var j = 0; j < _o; j++) sum += T.Exp(row[j] - max);
                total += max + T.Log(sum) - row[labels[b]];
            }
        }
        return total / T.CreateChecked(batch);
    }

    /// <summary>Forward, loss and gradient of the mean loss into <paramref name="grad"/> (overwritten). Returns the loss.</summary>
    public T LossAndGradient(ReadOnlySpan<T> p, ReadOnlySpan<T> x, ReadOnlySpan<T> mask, ReadOnlySpan<int> labels, int batch, Workspace<T> ws, Span<T> grad)
    {
        Debug.Assert(grad.Length == Layout.TotalLength);
        Forward(p, x, mask, batch, ws);
        var loss = Loss(labels, batch, ws);
        grad.Clear();

        // d loss / d logits = (probability - target) / batch for both sigmoid and softmax cross-entropy.
        var scale = T.One / T.CreateChecked(batch);
        var dLogits = ws.DLogits.AsSpan(0, batch * _o);
        for (var b = 0; b < batch; b++)
        {
            for (var j = 0; j < _o; j++)
            {
                var target = _c.Task == TaskKind.Binary ? (labels[b] == 1 ? T.One : T.Zero) : (labels[b] == j ? T.One : T.Zero);
                dLogits[b * _o + j] = (ws.Probabilities[b * _o + j] - target) * scale;
            }
        }

        var dHeadIn = ws.DHeadIn.AsSpan(0, batch * _d);
        HeadBackward(p, batch, ws, grad, dHeadIn);
        switch (_c.Architecture)
        {
            case ArchitectureKind.CnnLstm:
                LstmBackward(p, mask, batch, ws, grad, dHeadIn);
                ConvBackward(batch, ws, grad);
                break;
            case ArchitectureKind.CnnOnly:
                PoolBackward(mask, batch, ws, dHeadIn);
                ConvBackward(batch, ws, grad);
                break;
        }
        return loss;
    }

    private static int LastIndex(ReadOnlySpan<T> mask)
    {
        var last = 0;
        for (var t = 0; t < mask.Length; t++) if (mask[t] != T.Zero) last = t;
        return last;
    }

    // ---- convolution: causal, "same" length, output time-major [T, B, C] ----

    private void ConvForward(ReadOnlySpan<T> p, ReadOnlySpan<T> x, int batch, Workspace<T> ws)
    {
        var fk = _f * _k;
        var rows = _steps * batch;
        var cols = ws.Columns.AsSpan(0, rows * fk);
        cols.Clear();
        for (var t = 0; t < _steps; t++)
        {
            for (var b = 0; b < batch; b++)
            {
                var row = cols.Slice((t * batch + b) * fk, fk);
                for (var kk = 0; kk < _k; kk++)
                {
                    var src = t - (_k - 1) + kk;
                    if (src < 0) continue;
                    var xs = x.Slice((b * _steps + src) * _f, _f);
                    // Column index f * K + k matches the ONNX Conv weight layout [C, F, K].
                    for (var f = 0; f < _f; f++) row[f * _k + kk] = xs[f];
                }
            }
        }
        var z = ws.ConvPre.AsSpan(0, rows * _ch);
        MatMul<T>.MultiplyTransposedB(cols, p.Slice(_convW, _ch * fk), z, rows, fk, _ch, accumulate: false);
        MatMul<T>.AddRowVector(z, p.Slice(_convB, _ch), rows);
        Activations<T>.Apply(_c.ConvActivation, z, ws.ConvAct.AsSpan(0, rows * _ch));
    }

    private void ConvBackward(int batch, Workspace<T> ws, Span<T> grad)
    {
        var fk = _f * _k;
        var rows = _steps * batch;
        var dz = ws.DConv.AsSpan(0, rows * _ch);
        Activations<T>.Backward(_c.ConvActivation, ws.ConvPre.AsSpan(0, rows * _ch), ws.ConvAct.AsSpan(0, rows * _ch), dz, dz);
        MatMul<T>.TransposedAMultiplyAccumulate(dz, ws.Columns.AsSpan(0, rows * fk), grad.Slice(_convW, _ch * fk), rows, _ch, fk);
        MatMul<T>.AccumulateColumnSums(dz, grad.Slice(_convB, _ch), rows);
    }

    // ---- masked global average pooling (CNN-only baseline) ----

    private void PoolForward(ReadOnlySpan<T> mask, int batch, Workspace<T> ws, Span<T> pooled)
    {
        pooled.Clear();
        for (var b = 0; b < batch; b++)
        {
            var dst = pooled.Slice(b * _ch, _ch);
            var n = 0;
            for (var t = 0; t < _steps; t++)
            {
                if (mask[b * _steps + t] == T.Zero) continue;
                TensorPrimitives.Add(dst, ws.ConvAct.AsSpan((t * batch + b) * _ch, _ch), dst);
                n++;
            }
            TensorPrimitives.Multiply(dst, T.One / T.CreateChecked(Math.Max(1, n)), dst);
        }
    }

    private void PoolBackward(ReadOnlySpan<T> mask, int batch, Workspace<T> ws, ReadOnlySpan<T> dPooled)
    {
        var dA = ws.DConv.AsSpan(0, _steps * batch * _ch);
        dA.Clear();
        for (var b = 0; b < batch; b++)
        {
            var n = 0;
            for (var t = 0; t < _steps; t++) if (mask[b * _steps + t] != T.Zero) n++;
            var inv = T.One / T.CreateChecked(Math.Max(1, n));
            for (var t = 0; t < _steps; t++)
            {
                if (mask[b * _steps + t] == T.Zero) continue;
                TensorPrimitives.Multiply(dPooled.Slice(b * _ch, _ch), inv, dA.Slice((t * batch + b) * _ch, _ch));
            }
        }
    }

    // ---- LSTM over visits; a padded step carries the previous state unchanged ----

    private void LstmForward(ReadOnlySpan<T> p, ReadOnlySpan<T> mask, int batch, Workspace<T> ws)
    {
        var h4 = 4 * _h;
        var w = p.Slice(_lstmW, h4 * _ch);
        var r = p.Slice(_lstmR, h4 * _h);
        var bias = p.Slice(_lstmB, h4);
        var wt = ws.WeightT.AsSpan(0, _ch * h4);
        var rt = ws.RecurrentT.AsSpan(0, _h * h4);
        Transpose(w, wt, h4, _ch);
        Transpose(r, rt, h4, _h);
        ws.Hidden.AsSpan(0, batch * _h).Clear();
        ws.Cell.AsSpan(0, batch * _h).Clear();
        for (var t = 0; t < _steps; t++)
        {
            var a = ws.ConvAct.AsSpan(t * batch * _ch, batch * _ch);
            var hPrev = ws.Hidden.AsSpan(t * batch * _h, batch * _h);
            var cPrev = ws.Cell.AsSpan(t * batch * _h, batch * _h);
            var hNext = ws.Hidden.AsSpan((t + 1) * batch * _h, batch * _h);
            var cNext = ws.Cell.AsSpan((t + 1) * batch * _h, batch * _h);
            var pre = ws.GatePre.AsSpan(t * batch * h4, batch * h4);
            var act = ws.GateAct.AsSpan(t * batch * h4, batch * h4);
            var cNew = ws.CellNew.AsSpan(t * batch * _h, batch * _h);
            var cOut = ws.CellOut.AsSpan(t * batch * _h, batch * _h);

            // Row-update form with the transposed weights: 2 x (C + H) SIMD updates of length 4H per row
            // instead of 8H short dot products; rows of zeros (ReLU, first step) are skipped.
            for (var b = 0; b < batch; b++) bias.CopyTo(pre.Slice(b * h4, h4));
            MatMul<T>.MultiplyAccumulate(a, wt, pre, batch, _ch, h4);
            if (t > 0) MatMul<T>.MultiplyAccumulate(hPrev, rt, pre, batch, _h, h4);
            for (var b = 0; b < batch; b++)
            {
                var gp = pre.Slice(b * h4, h4);
                var ga = act.Slice(b * h4, h4);
                Activations<T>.Apply(_c.GateActivation, gp[..(3 * _h)], ga[..(3 * _h)]);
                Activations<T>.Apply(_c.CellActivation, gp[(3 * _h)..], ga[(3 * _h)..]);
                var i = ga[.._h];
                var o = ga.Slice(_h, _h);
                var f = ga.Slice(2 * _h, _h);
                var g = ga.Slice(3 * _h, _h);
                var cp = cPrev.Slice(b * _h, _h);
                var cn = cNew.Slice(b * _h, _h);
                var co = cOut.Slice(b * _h, _h);
                for (var j = 0; j < _h; j++) cn[j] = f[j] * cp[j] + i[j] * g[j];
                Activations<T>.Apply(_c.CellActivation, cn, co);
                if (mask[b * _steps + t] != T.Zero)
                {
                    cn.CopyTo(cNext.Slice(b * _h, _h));
                    TensorPrimitives.Multiply(o, co, hNext.Slice(b * _h, _h));
                }
                else
                {
                    cp.CopyTo(cNext.Slice(b * _h, _h));
                    hPrev.Slice(b * _h, _h).CopyTo(hNext.Slice(b * _h, _h));
                }
            }
        }
    }

    private void LstmBackward(ReadOnlySpan<T> p, ReadOnlySpan<T> mask, int batch, Workspace<T> ws, Span<T> grad, ReadOnlySpan<T> dHLast)
    {
        var h4 = 4 * _h;
        var w = p.Slice(_lstmW, h4 * _ch);
        var r = p.Slice(_lstmR, h4 * _h);
        var gw = grad.Slice(_lstmW, h4 * _ch);
        var gr = grad.Slice(_lstmR, h4 * _h);
        var gb = grad.Slice(_lstmB, h4);
        var dh = ws.DHidden.AsSpan(0, batch * _h);
        var dc = ws.DCell.AsSpan(0, batch * _h);
        var dhPrev = ws.DHiddenPrev.AsSpan(0, batch * _h);
        var dg = ws.DGates.AsSpan(0, batch * h4);
        dHLast.CopyTo(dh);
        dc.Clear();
        var dA = ws.DConv.AsSpan(0, _steps * batch * _ch);
        dA.Clear();

        for (var t = _steps - 1; t >= 0; t--)
        {
            var pre = ws.GatePre.AsSpan(t * batch * h4, batch * h4);
            var act = ws.GateAct.AsSpan(t * batch * h4, batch * h4);
            var cPrev = ws.Cell.AsSpan(t * batch * _h, batch * _h);
            var cNew = ws.CellNew.AsSpan(t * batch * _h, batch * _h);
            var cOut = ws.CellOut.AsSpan(t * batch * _h, batch * _h);
            dg.Clear();
            var anyActive = false;
            for (var b = 0; b < batch; b++)
            {
                if (mask[b * _steps + t] == T.Zero) continue; // state passed through: dh, dc flow to t-1 unchanged
                anyActive = true;
                var ga = act.Slice(b * h4, h4);
                var gp = pre.Slice(b * h4, h4);
                var d = dg.Slice(b * h4, h4);
                var dhb = dh.Slice(b * _h, _h);
                var dcb = dc.Slice(b * _h, _h);
                var cp = cPrev.Slice(b * _h, _h);
                var cn = cNew.Slice(b * _h, _h);
                var co = cOut.Slice(b * _h, _h);
                for (var j = 0; j < _h; j++)
                {
                    var i = ga[j];
                    var o = ga[_h + j];
                    var f = ga[2 * _h + j];
                    var g = ga[3 * _h + j];
                    var dcTotal = dcb[j] + dhb[j] * o * Activations<T>.Derivative(_c.CellActivation, cn[j], co[j]);
                    var dO = dhb[j] * co[j];
                    var dI = dcTotal * g;
                    var dF = dcTotal * cp[j];
                    var dG = dcTotal * i;
                    d[j] = dI * Activations<T>.Derivative(_c.GateActivation, gp[j], i);
                    d[_h + j] = dO * Activations<T>.Derivative(_c.GateActivation, gp[_h + j], o);
                    d[2 * _h + j] = dF * Activations<T>.Derivative(_c.GateActivation, gp[2 * _h + j], f);
                    d[3 * _h + j] = dG * Activations<T>.Derivative(_c.CellActivation, gp[3 * _h + j], g);
                    dcb[j] = dcTotal * f; // gradient into c_{t-1}
                    dhb[j] = T.Zero;      // replaced below by dG · R
                }
            }
            if (!anyActive) continue;
            var a = ws.ConvAct.AsSpan(t * batch * _ch, batch * _ch);
            var hPrev = ws.Hidden.AsSpan(t * batch * _h, batch * _h);
            MatMul<T>.TransposedAMultiplyAccumulate(dg, a, gw, batch, h4, _ch);
            MatMul<T>.TransposedAMultiplyAccumulate(dg, hPrev, gr, batch, h4, _h);
            MatMul<T>.AccumulateColumnSums(dg, gb, batch);
            MatMul<T>.MultiplyAccumulate(dg, w, dA.Slice(t * batch * _ch, batch * _ch), batch, h4, _ch);
            dhPrev.Clear();
            MatMul<T>.MultiplyAccumulate(dg, r, dhPrev, batch, h4, _h);
            TensorPrimitives.Add(dh, dhPrev, dh);
        }
    }

    /// <summary>dst[cols, rows] = src[rows, cols]ᵀ.</summary>
    private static void Transpose(ReadOnlySpan<T> src, Span<T> dst, int rows, int cols)
    {
        for (var i = 0; i < rows; i++)
        for (var j = 0; j < cols; j++)
            dst[j * rows + i] = src[i * cols + j];
    }

    // ---- dense head ----

    private void HeadForward(ReadOnlySpan<T> p, int batch, Workspace<T> ws)
    {
        ReadOnlySpan<T> input = ws.HeadIn.AsSpan(0, batch * _d);
        var width = _d;
        if (_hh > 0)
        {
            var pre = ws.HiddenPre.AsSpan(0, batch * _hh);
            MatMul<T>.MultiplyTransposedB(input, p.Slice(_hidW, _hh * _d), pre, batch, _d, _hh, accumulate: false);
            MatMul<T>.AddRowVector(pre, p.Slice(_hidB, _hh), batch);
            Activations<T>.Apply(_c.HeadActivation, pre, ws.HiddenAct.AsSpan(0, batch * _hh));
            input = ws.HiddenAct.AsSpan(0, batch * _hh);
            width = _hh;
        }
        var logits = ws.Logits.AsSpan(0, batch * _o);
        MatMul<T>.MultiplyTransposedB(input, p.Slice(_outW, _o * width), logits, batch, width, _o, accumulate: false);
        MatMul<T>.AddRowVector(logits, p.Slice(_outB, _o), batch);
        var probs = ws.Probabilities.AsSpan(0, batch * _o);
        if (_c.Task == TaskKind.Binary)
        {
            for (var b = 0; b < batch; b++) probs[b] = T.One / (T.One + T.Exp(-logits[b]));
        }
        else
        {
            for (var b = 0; b < batch; b++)
            {
                var row = logits.Slice(b * _o, _o);
                var prow = probs.Slice(b * _o, _o);
                var max = TensorPrimitives.Max<T>(row);
                var sum = T.Zero;
                for (var j = 0; j < _o; j++) { prow[j] = T.Exp(row[j] - max); sum += prow[j]; }
                for (var j = 0; j < _o; j++) prow[j] /= sum;
            }
        }
    }

    private void HeadBackward(ReadOnlySpan<T> p, int batch, Workspace<T> ws, Span<T> grad, Span<T> dHeadIn)
    {
        var dLogits = ws.DLogits.AsSpan(0, batch * _o);
        dHeadIn.Clear();
        if (_hh > 0)
        {
            var hidden = ws.HiddenAct.AsSpan(0, batch * _hh);
            MatMul<T>.TransposedAMultiplyAccumulate(dLogits, hidden, grad.Slice(_outW, _o * _hh), batch, _o, _hh);
            MatMul<T>.AccumulateColumnSums(dLogits, grad.Slice(_outB, _o), batch);
            var dHidden = ws.DHiddenLayer.AsSpan(0, batch * _hh);
            dHidden.Clear();
            MatMul<T>.MultiplyAccumulate(dLogits, p.Slice(_outW, _o * _hh), dHidden, batch, _o, _hh);
            Activations<T>.Backward(_c.HeadActivation, ws.HiddenPre.AsSpan(0, batch * _hh), hidden, dHidden, dHidden);
            MatMul<T>.TransposedAMultiplyAccumulate(dHidden, ws.HeadIn.AsSpan(0, batch * _d), grad.Slice(_hidW, _hh * _d), batch, _hh, _d);
            MatMul<T>.AccumulateColumnSums(dHidden, grad.Slice(_hidB, _hh), batch);
            MatMul<T>.MultiplyAccumulate(dHidden, p.Slice(_hidW, _hh * _d), dHeadIn, batch, _hh, _d);
        }
        else
        {
            MatMul<T>.TransposedAMultiplyAccumulate(dLogits, ws.HeadIn.AsSpan(0, batch * _d), grad.Slice(_outW, _o * _d), batch, _o, _d);
            MatMul<T>.AccumulateColumnSums(dLogits, grad.Slice(_outB, _o), batch);
            MatMul<T>.MultiplyAccumulate(dLogits, p.Slice(_outW, _o * _d), dHeadIn, batch, _o, _d);
        }
    }
}

/// <summary>Scratch buffers for one network and a maximum batch size; reused across batches.</summary>
internal sealed class Workspace<T> where T : unmanaged
{
    public Workspace(ModelConfig c, int maxBatch)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatch, 1);
        MaxBatch = maxBatch;
        var rows = c.Steps * maxBatch;
        var conv = c.Architecture != ArchitectureKind.LastVisitLogistic;
        var lstm = c.Architecture == ArchitectureKind.CnnLstm;
        var d = ModelLayout.HeadInputWidth(c);
        Columns = new T[conv ? rows * c.Features * c.KernelSize : 0];
        ConvPre = new T[conv ? rows * c.ConvChannels : 0];
        ConvAct = new T[conv ? rows * c.ConvChannels : 0];
        DConv = new T[conv ? rows * c.ConvChannels : 0];
        var h = lstm ? c.LstmHidden : 0;
        WeightT = new T[(conv ? c.ConvChannels : 0) * 4 * h];
        RecurrentT = new T[h * 4 * h];
        GatePre = new T[rows * 4 * h];
        GateAct = new T[rows * 4 * h];
        CellNew = new T[rows * h];
        CellOut = new T[rows * h];
        Hidden = new T[(c.Steps + 1) * maxBatch * h];
        Cell = new T[(c.Steps + 1) * maxBatch * h];
        DHidden = new T[maxBatch * h];
        DHiddenPrev = new T[maxBatch * h];
        DCell = new T[maxBatch * h];
        DGates = new T[maxBatch * 4 * h];
        HeadIn = new T[maxBatch * d];
        DHeadIn = new T[maxBatch * d];
        HiddenPre = new T[maxBatch * c.HeadHidden];
        HiddenAct = new T[maxBatch * c.HeadHidden];
        DHiddenLayer = new T[maxBatch * c.HeadHidden];
        Logits = new T[maxBatch * c.Outputs];
        Probabilities = new T[maxBatch * c.Outputs];
        DLogits = new T[maxBatch * c.Outputs];
        LastIndex = new int[maxBatch];
    }

    public int MaxBatch { get; }
    public T[] Columns { get; }
    public T[] ConvPre { get; }
    public T[] ConvAct { get; }
    public T[] DConv { get; }
    public T[] WeightT { get; }
    public T[] RecurrentT { get; }
    public T[] GatePre { get; }
    public T[] GateAct { get; }
    public T[] CellNew { get; }
    public T[] CellOut { get; }
    public T[] Hidden { get; }
    public T[] Cell { get; }
    public T[] DHidden { get; }
    public T[] DHiddenPrev { get; }
    public T[] DCell { get; }
    public T[] DGates { get; }
    public T[] HeadIn { get; }
    public T[] DHeadIn { get; }
    public T[] HiddenPre { get; }
    public T[] HiddenAct { get; }
    public T[] DHiddenLayer { get; }
    public T[] Logits { get; }
    public T[] Probabilities { get; }
    public T[] DLogits { get; }
    public int[] LastIndex { get; }
}
