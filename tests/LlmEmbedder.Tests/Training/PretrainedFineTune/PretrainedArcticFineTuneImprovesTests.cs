using System.Globalization;
using System.Text.Json;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Tests.Reference;
using LlmEmbedder.Training;
using Tokenizers.DotNet;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Training.PretrainedFineTune;

/// <summary>
/// Real pretrained weights improve: snowflake-arctic-embed-xs, fine-tuned for a few dozen steps on a small English
/// helpdesk set (see make_data.py), ranks the held-out queries' articles better than the original model does.
/// The baseline is ONNX Runtime running the packaged arctic graph, tokenized by Hugging Face tokenizers, scored by
/// this class's own brute-force ranking; the trainer's own "before" evaluation must agree with it, and the saved
/// encoder must reproduce the trainer's "after" evaluation.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class PretrainedArcticFineTuneImprovesTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Arctic-embed's documented query prefix; the "bge" instruction version must add the same one.</summary>
    private const string ArcticQueryPrefix = "Represent this sentence for searching relevant passages: ";

    private const int QueryMaxLength = 48;
    private const int KeyMaxLength = 96;

    /// <summary>
    /// Lowest gains in MRR@10 the fine-tune must reach, on all 60 held-out queries and on the 30 about articles never
    /// in training. Measured with these settings (before 0.1884 for every seed): seeds 42, 1, 2, 3, 4, 5 gained
    /// +0.248, +0.339, +0.289, +0.304, +0.304, +0.256 overall and +0.254, +0.357, +0.268, +0.347, +0.324, +0.275 on
    /// unseen articles; the margins sit far below the smallest. (At lr 5e-5 the gain was only +0.14 and +0.18.)
    /// </summary>
    private const double RequiredGain = 0.15;
    private const double RequiredGainOnUnseenArticles = 0.10;

    /// <summary>One query's reciprocal rank moves by at most 1/2 when a near-tie flips: 0.5 / 60 queries.</summary>
    private const double CrossCheckTolerance = 0.01;

    /// <summary>The helpdesk set: train.jsonl, eval.jsonl, corpus.jsonl (see make_data.py).</summary>
    internal static readonly string DataDir = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Training", "PretrainedFineTune");

    private readonly string dir = TestPaths.NewTempDir("arctic-finetune");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void ShortFineTuneRaisesHeldOutMrrAt10OverTheOnnxRuntimeOriginal()
    {
        var reference = PretrainedOnnxModels.ArcticXs;
        var heldOut = HeldOutSet.Load(DataDir);
        AssertHeldOutIsHeldOut(heldOut);
        var queries = heldOut.Queries.Select(q => ArcticQueryPrefix + q.Text).ToList();

        using var huggingFace = new Tokenizer(reference.TokenizerJsonPath);
        var baseline = heldOut.ReciprocalRanksAt10(
            OnnxEmbeddings(reference, huggingFace, queries, QueryMaxLength),
            OnnxEmbeddings(reference, huggingFace, heldOut.Keys, KeyMaxLength));

        var outputDir = Path.Combine(dir, "output");
        var modelArgs = new ModelArguments
        {
            QueryEncoder = reference.HuggingFaceDir,
            TrainData = [Path.Combine(DataDir, "train.jsonl")],
            EvalData = Path.Combine(DataDir, "eval.jsonl"),
            Corpus = Path.Combine(DataDir, "corpus.jsonl"),
            KeyTemplate = "{title} {text}",
            Version = "bge",
            AddInstruction = true,
            PoolingMethod = ["cls"],
            DenseMetric = "cos",
            Dtype = "fp32",
            QueryMaxLength = QueryMaxLength,
            KeyMaxLength = KeyMaxLength,
            Metrics = ["mrr", "recall"],
            Cutoffs = [1, 5, 10],
        };
        var trainArgs = ShortFineTune(outputDir, Seed);
        var observer = new TestOutputObserver(output);
        var result = new Trainer(modelArgs, trainArgs, observer, model => model).Run(EncoderEvaluator.FromArguments(modelArgs));

        using var tuned = SentenceEncoder.Load(Path.Combine(outputDir, "encoder"));
        var after = heldOut.ReciprocalRanksAt10(tuned.Encode(queries, EmbeddingRole.Query), tuned.Encode(heldOut.Keys, EmbeddingRole.Key));

        double trainerBefore = result.MetricsBefore!["mrr@10"];
        double trainerAfter = result.MetricsAfter!["mrr@10"];
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"MRR@10 on {heldOut.Queries.Count} held-out queries: before {baseline.Average():F4} (ONNX Runtime; trainer {trainerBefore:F4}), " +
            $"after {after.Average():F4} (saved encoder; trainer {trainerAfter:F4}), gain {after.Average() - baseline.Average():+0.0000;-0.0000}"));
        var unseenRows = Enumerable.Range(0, heldOut.Queries.Count).Where(i => heldOut.Queries[i].AboutUnseenArticle).ToList();
        var seenRows = Enumerable.Range(0, heldOut.Queries.Count).Except(unseenRows).ToList();
        double unseenBefore = unseenRows.Average(i => baseline[i]), unseenAfter = unseenRows.Average(i => after[i]);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  articles seen in training ({seenRows.Count} queries): before {seenRows.Average(i => baseline[i]):F4}, after {seenRows.Average(i => after[i]):F4}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  articles never in training ({unseenRows.Count} queries): before {unseenBefore:F4}, after {unseenAfter:F4}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"training throughput {observer.LastLog!.SamplesPerSecond:F2} samples/s, {observer.LastLog.Elapsed.TotalSeconds:F0} s for {result.Steps} steps"));

        // The trainer started from the real arctic weights with arctic's own query prefix, and evaluated what it saved.
        Assert.InRange(trainerBefore, baseline.Average() - CrossCheckTolerance, baseline.Average() + CrossCheckTolerance);
        Assert.InRange(trainerAfter, after.Average() - CrossCheckTolerance, after.Average() + CrossCheckTolerance);
        Assert.True(after.Average() - baseline.Average() >= RequiredGain,
            string.Create(CultureInfo.InvariantCulture, $"MRR@10 {baseline.Average():F4} -> {after.Average():F4}: gain below {RequiredGain}"));
        Assert.True(unseenAfter - unseenBefore >= RequiredGainOnUnseenArticles,
            string.Create(CultureInfo.InvariantCulture, $"MRR@10 on unseen articles {unseenBefore:F4} -> {unseenAfter:F4}: gain below {RequiredGainOnUnseenArticles}"));
    }

    /// <summary>The fine-tune's settings: 30 steps of 8 queries in groups of 4 at lr 1e-4, no checkpoints.</summary>
    internal static TrainingArguments ShortFineTune(string outputDir, int seed) => new()
    {
        OutputDir = outputDir,
        LearningRate = 1e-4,
        MaxSteps = 30,
        PerDeviceTrainBatchSize = 8,
        TrainGroupSize = 4,
        CosTemperature = 0.02,
        Seed = seed,
        SaveSteps = 0,
        LoggingSteps = 10,
    };

    /// <summary>
    /// No held-out query is a training query, and the articles marked unseen occur in no training row, as positive
    /// or negative, while every other held-out article is a training positive.
    /// </summary>
    private static void AssertHeldOutIsHeldOut(HeldOutSet heldOut)
    {
        var trainQueries = new HashSet<string>();
        var trainKeys = new HashSet<string>();
        var trainPositives = new HashSet<string>();
        foreach (var line in File.ReadLines(Path.Combine(DataDir, "train.jsonl")))
        {
            using var row = JsonDocument.Parse(line);
            trainQueries.Add(row.RootElement.GetProperty("query").GetString()!);
            foreach (var field in new[] { "pos", "neg" })
                foreach (var key in row.RootElement.GetProperty(field).EnumerateArray())
                {
                    trainKeys.Add(key.GetString()!);
                    if (field == "pos") trainPositives.Add(key.GetString()!);
                }
        }
        Assert.All(heldOut.Queries, query =>
        {
            Assert.DoesNotContain(query.Text, trainQueries);
            var article = heldOut.Keys[query.Relevant.Single()];
            if (query.AboutUnseenArticle) Assert.DoesNotContain(article, trainKeys);
            else Assert.Contains(article, trainPositives);
        });
    }

    /// <summary>42, or LLM_EMBEDDER_FINETUNE_SEED to check the margins on other seeds.</summary>
    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("LLM_EMBEDDER_FINETUNE_SEED"), out var seed) ? seed : 42;

    /// <summary>L2-normalised [CLS] vectors of ONNX Runtime's last_hidden_state, one text per run (no padding).</summary>
    private static float[] OnnxEmbeddings(OnnxReferenceModel model, Tokenizer tokenizer, IReadOnlyList<string> texts, int maxLength)
    {
        int hidden = model.Config.HiddenSize;
        var embeddings = new float[texts.Count * hidden];
        for (int row = 0; row < texts.Count; row++)
        {
            long[] ids = [.. tokenizer.Encode(texts[row]).Select(id => (long)id)];
            // The trainer truncates at maxLength; the data is written to fit, so both see whole texts.
            Assert.True(ids.Length <= maxLength, $"{ids.Length} tokens exceed {maxLength}: \"{texts[row]}\"");
            var states = model.RunLastHiddenState(ids, [.. ids.Select(_ => 1L)], new long[ids.Length], 1, ids.Length);
            double norm = Math.Sqrt(states.Take(hidden).Sum(v => (double)v * v));
            for (int d = 0; d < hidden; d++) embeddings[row * hidden + d] = (float)(states[d] / norm);
        }
        return embeddings;
    }

    private sealed record HeldOutQuery(string Text, int[] Relevant, bool AboutUnseenArticle);

    /// <summary>eval.jsonl and corpus.jsonl read directly, keys formed as "{title} {text}".</summary>
    private sealed record HeldOutSet(IReadOnlyList<HeldOutQuery> Queries, IReadOnlyList<string> Keys)
    {
        public static HeldOutSet Load(string dataDir)
        {
            var keys = File.ReadLines(Path.Combine(dataDir, "corpus.jsonl")).Select(line =>
            {
                using var row = JsonDocument.Parse(line);
                return row.RootElement.GetProperty("title").GetString() + " " + row.RootElement.GetProperty("text").GetString();
            }).ToList();
            var queries = File.ReadLines(Path.Combine(dataDir, "eval.jsonl")).Select(line =>
            {
                using var row = JsonDocument.Parse(line);
                var root = row.RootElement;
                return new HeldOutQuery(
                    root.GetProperty("query").GetString()!,
                    [.. root.GetProperty("pos_index").EnumerateArray().Select(e => e.GetInt32())],
                    root.GetProperty("query_id").GetString()!.EndsWith("-unseen", StringComparison.Ordinal));
            }).ToList();
            return new HeldOutSet(queries, keys);
        }

        /// <summary>Per query: 1 / (rank of the best-ranked relevant key by dot product) if within 10, else 0.</summary>
        public double[] ReciprocalRanksAt10(float[] queryEmbeddings, float[] keyEmbeddings)
        {
            int dimension = queryEmbeddings.Length / Queries.Count;
            Assert.Equal(Keys.Count * dimension, keyEmbeddings.Length);
            var result = new double[Queries.Count];
            for (int q = 0; q < Queries.Count; q++)
            {
                var scores = new double[Keys.Count];
                for (int k = 0; k < Keys.Count; k++)
                {
                    double dot = 0;
                    for (int d = 0; d < dimension; d++) dot += (double)queryEmbeddings[q * dimension + d] * keyEmbeddings[k * dimension + d];
                    scores[k] = dot;
                }
                double best = Queries[q].Relevant.Max(k => scores[k]);
                int rank = 1 + scores.Count(s => s > best);
                result[q] = rank <= 10 ? 1.0 / rank : 0;
            }
            return result;
        }
    }

    private sealed class TestOutputObserver(ITestOutputHelper output) : ITrainingObserver
    {
        public TrainingStepLog? LastLog { get; private set; }

        public void Message(string text) => output.WriteLine(text);

        public void Step(TrainingStepLog log, bool logged)
        {
            LastLog = log;
            if (logged)
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {log.Step}/{log.TotalSteps} loss {log.Loss:F4} lr {log.LearningRate:E2} {log.SamplesPerSecond:F2} samples/s"));
        }

        public void Evaluated(int step, string label, IReadOnlyDictionary<string, double> metrics) =>
            output.WriteLine($"eval {label}: " + string.Join(" ", metrics.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Key} {m.Value:F4}"))));
    }
}
