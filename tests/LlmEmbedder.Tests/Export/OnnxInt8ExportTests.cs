using System.Globalization;
using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Reference;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Export;

/// <summary>
/// export --quantize int8 of snowflake-arctic-embed-xs: a third of the fp32 file or less, accepted by the onnx
/// checker, made of integer kernels, and on the held-out helpdesk set of the arctic fine-tune test (60 queries, 168
/// articles, arctic's query prefix) within 1% relative MRR@10 of the fp32 graph, as `eval --backend onnx` measures
/// both. Every int8 embedding stays close to its fp32 one.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class OnnxInt8ExportTests(ITestOutputHelper output) : IDisposable
{
    private const double MaxSizeRatio = 0.35;
    private const double MaxRelativeMrrDrop = 0.01;

    private static readonly string DataDir = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Training", "PretrainedFineTune");

    private readonly string dir = TestPaths.NewTempDir("onnx-int8");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Int8IsSmallIntegerAndKeepsMrrAt10WithinOnePercentOfFp32()
    {
        var export = Path.Combine(dir, "arctic");
        var evalData = Path.Combine(DataDir, "eval.jsonl");
        var corpus = Path.Combine(DataDir, "corpus.jsonl");
        var result = OnnxExportChecks.Export(PretrainedOnnxModels.ArcticXs.HuggingFaceDir, export, "--quantize", "int8", "--version", "bge",
            "--eval_data", evalData, "--corpus", corpus);
        output.WriteLine(result.Stderr);
        output.WriteLine(result.Stdout);
        Assert.Contains("onnx/model_qint8_avx512_vnni.onnx", result.Stdout.Split('\n'));
        Assert.Contains("cosine with fp32", result.Stderr);

        var fp32Path = Path.Combine(export, "onnx", "model.onnx");
        var int8Path = Path.Combine(export, "onnx", "model_qint8_avx512_vnni.onnx");
        double sizeRatio = (double)new FileInfo(int8Path).Length / new FileInfo(fp32Path).Length;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"int8 / fp32 file size: {sizeRatio:P1}"));
        Assert.InRange(sizeRatio, 0, MaxSizeRatio);

        var check = OnnxExportChecks.Check(int8Path);
        OnnxExportChecks.AssertInterface(check, 384, 384);
        var ops = check["op_types"]!.AsArray().Select(o => o!.GetValue<string>()).ToList();
        Assert.Contains("MatMulInteger", ops);
        Assert.Contains("DynamicQuantizeLinear", ops);
        Assert.Equal("int8", JsonNode.Parse(check["metadata"]!["llm_embedder.sentence_embedding"]!.GetValue<string>())!["weights"]!.GetValue<string>());

        var fp32 = Evaluate(export, evalData, corpus, "onnx/model.onnx");
        var int8 = Evaluate(export, evalData, corpus, "onnx/model_qint8_avx512_vnni.onnx");
        double relativeDrop = (fp32 - int8) / fp32;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"MRR@10 fp32 {fp32:F4}, int8 {int8:F4}, relative drop {relativeDrop:P2}"));
        Assert.True(fp32 > 0.1, $"fp32 MRR@10 {fp32}: the set should be neither trivial nor hopeless for arctic");
        Assert.InRange(relativeDrop, double.NegativeInfinity, MaxRelativeMrrDrop);

        // Both graphs on the same texts (encode, no instruction): every int8 vector points where its fp32 one does.
        var input = Path.Combine(dir, "texts.txt");
        File.WriteAllText(input, string.Join("\n", OnnxExportChecks.Texts) + "\n");
        var vectors = new[] { "onnx/model.onnx", "onnx/model_qint8_avx512_vnni.onnx" }.Select(file =>
        {
            var npy = Path.Combine(dir, Path.GetFileNameWithoutExtension(file) + ".npy");
            var run = CliProcess.Run(["encode", "--model", export, "--input", input, "--output", npy, "--backend", "onnx", "--onnx_file", file]);
            Assert.True(run.ExitCode == 0, run.Stderr);
            return Npy.ReadFloat32(npy).Values;
        }).ToArray();
        var cosines = Enumerable.Range(0, OnnxExportChecks.Texts.Length)
            .Select(row => Enumerable.Range(row * 384, 384).Sum(i => (double)vectors[0][i] * vectors[1][i])).ToArray();
        output.WriteLine($"cosine int8 vs fp32 per text: {string.Join(", ", cosines.Select(c => c.ToString("F4", CultureInfo.InvariantCulture)))}");
        Assert.All(cosines, cosine => Assert.InRange(cosine, 0.97, 1.0001));
    }

    private double Evaluate(string model, string evalData, string corpus, string onnxFile)
    {
        var outputDir = Path.Combine(dir, "eval-" + Path.GetFileNameWithoutExtension(onnxFile));
        var run = CliProcess.Run(["eval", "--model", model, "--eval_data", evalData, "--corpus", corpus, "--backend", "onnx", "--onnx_file", onnxFile,
            "--output_dir", outputDir, "--no_cache"]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        return JsonNode.Parse(File.ReadAllText(Path.Combine(outputDir, "metrics.json")))!["mrr@10"]!.GetValue<double>();
    }
}
