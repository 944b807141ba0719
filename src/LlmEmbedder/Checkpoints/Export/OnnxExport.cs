using System.Diagnostics;
using System.Reflection;
using LlmEmbedder.Data;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>What export --onnx writes besides the sentence-transformers folder, and what its gate checks against.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Also write the int8 graph (<see cref="OnnxEmbeddingModel.Int8File"/>).</summary>
    public bool Int8 { get; init; }

    /// <summary>Texts of this set join the gate's samples, and int8 is scored on it against fp32.</summary>
    public RetrievalDataset? EvalSet { get; init; }

    /// <summary>The instruction the eval set is encoded with; null for none.</summary>
    public Instruction? EvalInstruction { get; init; }

    /// <summary>ONNX Runtime's threads in the gate; 0: its default.</summary>
    public int Threads { get; init; }
}

/// <param name="MaxAbsSentenceEmbedding">Largest |ONNX Runtime − TorchSharp| over every sentence_embedding value.</param>
/// <param name="MaxAbsLastHiddenState">The same over last_hidden_state at real (not padding) tokens.</param>
public sealed record OnnxParity(int Texts, int LongestRow, double MaxAbsSentenceEmbedding, double MaxAbsLastHiddenState);

/// <summary>Cosine similarity of each text's int8 embedding with its fp32 one.</summary>
public sealed record CosineSummary(int Rows, double Min, double Percentile1, double Median, double Mean);

/// <summary>The int8 graph against the fp32 one: size, per-text cosines, and retrieval metrics when an eval set was given.</summary>
/// <param name="RelativeDrop">(fp32 − int8) / fp32 of <paramref name="MainMetric"/>.</param>
public sealed record Int8Report(
    string File,
    long Bytes,
    CosineSummary Cosines,
    IReadOnlyDictionary<string, double>? Fp32Metrics,
    IReadOnlyDictionary<string, double>? Int8Metrics,
    string? MainMetric,
    double? RelativeDrop)
{
    /// <summary>A drop of the main metric above this (relative) is warned about.</summary>
    public const double WarnAbove = 0.01;

    public bool Warn => RelativeDrop > WarnAbove;
}

/// <param name="Files">Paths relative to the export folder.</param>
public sealed record OnnxExportReport(IReadOnlyList<string> Files, long Fp32Bytes, bool ExternalData, OnnxParity Parity, Int8Report? Int8);

/// <summary>
/// Writes onnx/model.onnx (and with int8 onnx/model_qint8_avx512_vnni.onnx) into an export folder being staged, built
/// from the folder's own TorchSharp encoder, then runs the parity gate: ONNX Runtime against TorchSharp on padded
/// mixed-length batches (one row at the spec's longest max length). fp32 must agree within <see cref="Tolerance"/> or
/// the export fails, and the folder is never published.
/// </summary>
public static class OnnxExport
{
    /// <summary>Max |ONNX Runtime − TorchSharp| the fp32 graph may show (a few ulps of fp32 through a deep network).</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Rows of a gate batch: each holds texts of very different lengths, so most rows are padding-heavy.</summary>
    private const int GateBatchSize = 4;

    /// <summary>Eval-set texts added to the gate (queries, then corpus rows), so its cost does not grow with the corpus.</summary>
    private const int EvalSetGateTexts = 24;

    /// <summary>
    /// Texts every gate runs, in batches of <see cref="GateBatchSize"/>: the first batch mixes a row cut at the max
    /// length with short, empty and medium rows; the rest mix English, Chinese, accents and punctuation.
    /// </summary>
    private static readonly string[] SampleTexts =
    [
        string.Join(" ", Enumerable.Repeat("The quick brown fox jumps over the lazy dog; 敏捷的棕色狐狸跳过了懒狗。", 120)),
        "Hi",
        "",
        "How do I reset my password if I no longer have access to the email address on my account?",
        "北京是中华人民共和国的首都，也是全国的政治和文化中心。",
        "Café naïve résumé — déjà vu, Straße, ÅNGSTRÖM!",
        "什么是检索增强生成（RAG）？",
        "A short query",
        "Embedding models map text to vectors whose dot products say how related two texts are, so search needs no keywords.",
        "今天天气很好",
        "What is the capital of France?",
        "1234567890 +-*/ () [] {} <> @#$%^&",
    ];

    public static OnnxExportReport Write(string folder, EncoderSpec spec, OnnxExportOptions options, IProgress<string>? progress = null)
    {
        var fp32Spec = spec with { Dtype = InferenceDtype.Float32 };
        using var encoder = SentenceEncoder.Load(folder, fp32Spec);
        var clock = Stopwatch.StartNew();
        var fp32Files = Save(encoder, OnnxWeights.Float32, folder, OnnxEmbeddingModel.DefaultFile);
        progress?.Report($"wrote {OnnxEmbeddingModel.DefaultFile}{(fp32Files.Count > 1 ? $" with its weights in {Path.GetFileName(fp32Files[1])}" : "")} in {clock.Elapsed.TotalSeconds:F1} s; checking it against TorchSharp");

        var texts = GateTexts(options.EvalSet);
        var batches = texts.Chunk(GateBatchSize).Select(chunk => encoder.Tokenizer.EncodeBatch(chunk, Math.Max(spec.QueryMaxLength, spec.KeyMaxLength))).ToList();
        OnnxParity parity;
        List<float[]> fp32Embeddings;
        using (var onnx = OnnxEmbeddingModel.Load(folder, fp32Spec, OnnxEmbeddingModel.DefaultFile, options.Threads, lastHiddenState: true))
            (parity, fp32Embeddings) = Compare(encoder, onnx, batches, texts.Count);
        progress?.Report($"parity: {parity.Texts} texts (longest {parity.LongestRow} tokens): max |ONNX Runtime − TorchSharp| " +
            $"{parity.MaxAbsSentenceEmbedding:E2} (sentence_embedding), {parity.MaxAbsLastHiddenState:E2} (last_hidden_state)");
        if (parity.MaxAbsSentenceEmbedding > Tolerance || parity.MaxAbsLastHiddenState > Tolerance || double.IsNaN(parity.MaxAbsSentenceEmbedding + parity.MaxAbsLastHiddenState))
            throw new EmbedderException($"the ONNX export differs from the TorchSharp encoder by {Math.Max(parity.MaxAbsSentenceEmbedding, parity.MaxAbsLastHiddenState):E2} " +
                $"(more than {Tolerance:E0}); nothing was written");

        Int8Report? int8 = null;
        if (options.Int8)
        {
            clock.Restart();
            Save(encoder, OnnxWeights.Int8, folder, OnnxEmbeddingModel.Int8File);
            progress?.Report($"wrote {OnnxEmbeddingModel.Int8File} in {clock.Elapsed.TotalSeconds:F1} s; comparing it with fp32");
            int8 = CompareInt8(folder, fp32Spec, options, batches, fp32Embeddings, encoder.Dimension, progress);
        }
        var files = Directory.EnumerateFiles(Path.Combine(folder, "onnx")).Select(f => "onnx/" + Path.GetFileName(f)).Order(StringComparer.Ordinal).ToList();
        return new OnnxExportReport(files, fp32Files.Sum(f => new FileInfo(f).Length), fp32Files.Count > 1, parity, int8);
    }

    private static IReadOnlyList<string> Save(SentenceEncoder encoder, OnnxWeights weights, string folder, string file)
    {
        var path = Path.Combine(folder, file);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var version = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";
        return OnnxEncoderGraph.Build(encoder, weights).Save(path, version);
    }

    private static List<string> GateTexts(RetrievalDataset? evalSet)
    {
        var texts = SampleTexts.ToList();
        if (evalSet is not null)
            texts.AddRange(evalSet.QueryTexts.Take(EvalSetGateTexts / 2).Concat(evalSet.CorpusTexts).Take(EvalSetGateTexts));
        return texts;
    }

    /// <summary>Max |Δ| of both outputs over every batch; also returns ONNX Runtime's sentence embeddings per batch.</summary>
    private static (OnnxParity, List<float[]>) Compare(SentenceEncoder encoder, OnnxEmbeddingModel onnx, IReadOnlyList<TokenBatch> batches, int texts)
    {
        double worstEmbedding = 0, worstHidden = 0;
        var embeddings = new List<float[]>();
        foreach (var batch in batches)
        {
            var (onnxEmbeddings, onnxHidden) = onnx.Run(batch);
            embeddings.Add(onnxEmbeddings);
            float[] torchEmbeddings, torchHidden;
            using (NewDisposeScope())
            using (inference_mode())
            {
                var (embedding, hidden) = SentenceEncoder.EmbedWithHiddenStates(encoder.Model, batch, encoder.Spec.Pooling, encoder.Spec.Normalize, encoder.Dense);
                torchEmbeddings = embedding.contiguous().data<float>().ToArray();
                torchHidden = hidden.contiguous().data<float>().ToArray();
            }
            worstEmbedding = Math.Max(worstEmbedding, MaxAbsDifference(onnxEmbeddings, torchEmbeddings, 0, onnxEmbeddings.Length));
            int width = encoder.Model.Config.HiddenSize;
            for (int token = 0; token < batch.AttentionMask.Length; token++)
                if (batch.AttentionMask[token] == 1)
                    worstHidden = Math.Max(worstHidden, MaxAbsDifference(onnxHidden!, torchHidden, (long)token * width, width));
        }
        int longest = batches.Max(b => Enumerable.Range(0, b.BatchSize).Max(row => (int)b.AttentionMask.AsSpan(row * b.SequenceLength, b.SequenceLength).ToArray().Sum()));
        return (new OnnxParity(texts, longest, worstEmbedding, worstHidden), embeddings);
    }

    private static double MaxAbsDifference(float[] a, float[] b, long offset, int count)
    {
        if (a.Length != b.Length) return double.PositiveInfinity;
        double worst = 0;
        for (long i = offset; i < offset + count; i++)
        {
            double difference = Math.Abs((double)a[i] - b[i]);
            if (double.IsNaN(difference)) return double.NaN;
            worst = Math.Max(worst, difference);
        }
        return worst;
    }

    private static Int8Report CompareInt8(string folder, EncoderSpec spec, OnnxExportOptions options, IReadOnlyList<TokenBatch> batches,
        List<float[]> fp32Embeddings, int dimension, IProgress<string>? progress)
    {
        var cosines = new List<double>();
        using (var int8 = OnnxEmbeddingModel.Load(folder, spec, OnnxEmbeddingModel.Int8File, options.Threads))
            for (int b = 0; b < batches.Count; b++)
                cosines.AddRange(RowCosines(fp32Embeddings[b], int8.Embed(batches[b]), dimension));

        IReadOnlyDictionary<string, double>? fp32Metrics = null, int8Metrics = null;
        string? mainMetric = null;
        double? drop = null;
        if (options.EvalSet is { } evalSet)
        {
            // eval's defaults (batch size included: int8 activations are quantized per batch), so `eval --backend onnx` gives the same numbers.
            var settings = new EvaluationSettings(options.EvalInstruction, KeyTemplate.Default, RetrievalMetrics.DefaultMetrics, RetrievalMetrics.DefaultCutoffs);
            ModelEvaluationResult Evaluate(string file)
            {
                var request = new EncoderRequest(ModelFolder.Open(folder), spec, Backend: new InferenceBackend(BackendKind.Onnx, file));
                using var encoder = new CachingEncoder(request, cache: null);
                progress?.Report($"evaluating {file} on {evalSet.Queries.Count} queries, {evalSet.CorpusTexts.Count} corpus rows");
                return ModelEvaluation.Run(encoder, evalSet, settings);
            }
            var fp32 = Evaluate(OnnxEmbeddingModel.DefaultFile);
            var quantized = Evaluate(OnnxEmbeddingModel.Int8File);
            cosines.AddRange(RowCosines(fp32.Queries.Values, quantized.Queries.Values, dimension));
            cosines.AddRange(RowCosines(fp32.Corpus.Values, quantized.Corpus.Values, dimension));
            fp32Metrics = fp32.Evaluation.Metrics.Values;
            int8Metrics = quantized.Evaluation.Metrics.Values;
            mainMetric = RetrievalMetrics.MainMetric(fp32Metrics.Keys.ToList());
            if (mainMetric is not null && fp32Metrics[mainMetric] > 0)
                drop = (fp32Metrics[mainMetric] - int8Metrics[mainMetric]) / fp32Metrics[mainMetric];
        }
        var sorted = cosines.Order().ToArray();
        var summary = new CosineSummary(sorted.Length, sorted[0], sorted[(int)Math.Floor(0.01 * (sorted.Length - 1))], sorted[(sorted.Length - 1) / 2], sorted.Average());
        var path = Path.Combine(folder, OnnxEmbeddingModel.Int8File);
        return new Int8Report(OnnxEmbeddingModel.Int8File, new FileInfo(path).Length, summary, fp32Metrics, int8Metrics, mainMetric, drop);
    }

    private static IEnumerable<double> RowCosines(float[] a, float[] b, int dimension)
    {
        for (int row = 0; row < a.Length / dimension; row++)
        {
            double dot = 0, normA = 0, normB = 0;
            for (int d = row * dimension; d < (row + 1) * dimension; d++)
            {
                dot += (double)a[d] * b[d];
                normA += (double)a[d] * a[d];
                normB += (double)b[d] * b[d];
            }
            yield return normA == 0 || normB == 0 ? (normA == normB ? 1 : 0) : dot / Math.Sqrt(normA * normB);
        }
    }
}
