using System.Globalization;
using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Spec;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Export;

/// <summary>
/// A Chinese model trained with --pooling_method cls dense exports to ONNX with its dense pooler inside the graph:
/// the checker accepts it, sentence_embedding equals PyTorch applying the trained dense_pooler.bin (torch.load, as
/// run_dense.py) to the graph's own [CLS] vector, and our TorchSharp encoder, within 1e-4; `encode --backend onnx`
/// equals `encode`. The ONNX backend refuses what the graph does not compute, and says when a folder has no export.
/// </summary>
public sealed class OnnxExportDensePoolerTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("onnx-dense");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void TrainedDensePoolerIsInsideTheGraphAndMatchesPyTorchAndTorchSharp()
    {
        var model = CliProcess.TinyChineseModel(dir, layers: 2);
        var run = TinyRuns.Train(dir, model, "dense-run", twoTasks: false, steps: 3, "--pooling_method", "cls", "dense");
        var encoderDir = Path.Combine(run, "encoder");
        var export = Path.Combine(dir, "export");
        var result = OnnxExportChecks.Export(run, export, "--onnx");
        output.WriteLine(result.Stderr);
        var onnxPath = Path.Combine(export, "onnx", "model.onnx");
        var check = OnnxExportChecks.Check(onnxPath);
        OnnxExportChecks.AssertInterface(check, 32, 32);
        var described = JsonNode.Parse(check["metadata"]!["llm_embedder.sentence_embedding"]!.GetValue<string>())!;
        Assert.True(described["dense"]!.GetValue<bool>());
        Assert.Equal("cls", described["pooling"]!.GetValue<string>());

        using var encoder = SentenceEncoder.Load(export);
        Assert.NotNull(encoder.Dense);
        var batch = encoder.Tokenizer.EncodeBatch([.. TinyRuns.Texts, .. OnnxExportChecks.Texts], 512);
        var (lastHidden, embeddings) = OnnxExportChecks.Run(onnxPath, batch);

        // PyTorch applies the trained file to the graph's [CLS] vectors and normalises.
        var cls = new float[batch.BatchSize * 32];
        for (int row = 0; row < batch.BatchSize; row++) Array.Copy(lastHidden, (long)row * batch.SequenceLength * 32, cls, row * 32, 32);
        var clsPath = Path.Combine(dir, "cls.npy");
        var expectedPath = Path.Combine(dir, "expected.npy");
        Npy.WriteFloat32(clsPath, cls, batch.BatchSize, 32);
        ReferencePython.Run("dense_pooler_reference.py", "apply", Path.Combine(encoderDir, SentenceEncoder.DensePoolerFile), clsPath, expectedPath);
        double worstPyTorch = TinyRuns.MaxAbsDifference(embeddings, Npy.ReadFloat32(expectedPath).Values);
        double worstTorchSharp = TinyRuns.MaxAbsDifference(embeddings, encoder.Embed(batch));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sentence_embedding vs PyTorch dense pooler {worstPyTorch:E2}, vs TorchSharp {worstTorchSharp:E2}"));
        Assert.InRange(worstPyTorch, 0, OnnxExportChecks.Tolerance);
        Assert.InRange(worstTorchSharp, 0, OnnxExportChecks.Tolerance);

        var torch = TinyRuns.Encode(dir, export, "query", null);
        var onnx = TinyRuns.Encode(dir, export, "query", null, "--backend", "onnx");
        Assert.InRange(TinyRuns.MaxAbsDifference(torch.Vectors, onnx.Vectors), 0, OnnxExportChecks.Tolerance);

        // The graph pools CLS and projects; asking it for mean pooling, or to skip normalisation, is refused, not ignored.
        var input = Path.Combine(dir, "texts.txt");
        var mean = CliProcess.Run(["encode", "--model", export, "--input", input, "--output", Path.Combine(dir, "x.npy"), "--backend", "onnx", "--pooling_method", "mean"]);
        Assert.Equal(1, mean.ExitCode);
        Assert.Contains("the ONNX graph computes cls pooling, not mean", mean.Stderr);
        var ip = CliProcess.Run(["encode", "--model", export, "--input", input, "--output", Path.Combine(dir, "x.npy"), "--backend", "onnx", "--dense_metric", "ip"]);
        Assert.Equal(1, ip.ExitCode);
        Assert.Contains("L2-normalised vectors", ip.Stderr);

        // The training output itself was never exported to ONNX.
        var missing = CliProcess.Run(["encode", "--model", run, "--input", input, "--output", Path.Combine(dir, "y.npy"), "--backend", "onnx"]);
        Assert.Equal(1, missing.ExitCode);
        Assert.Contains("has no ONNX export (onnx/model.onnx not found)", missing.Stderr);
        Assert.DoesNotContain("   at ", missing.Stderr);
        Assert.False(File.Exists(Path.Combine(dir, "y.npy")));
    }

    [Fact]
    public void OnnxOnlyFlagsAreCheckedBeforeAnythingIsRead()
    {
        var input = Path.Combine(dir, "missing.txt");
        var bf16 = CliProcess.Run(["encode", "--model", dir, "--input", input, "--output", Path.Combine(dir, "x.npy"), "--backend", "onnx", "--dtype", "bf16"]);
        Assert.Equal(1, bf16.ExitCode);
        Assert.Contains("--dtype bf16 is a TorchSharp setting", bf16.Stderr);
        var file = CliProcess.Run(["encode", "--model", dir, "--input", input, "--output", Path.Combine(dir, "x.npy"), "--onnx_file", "onnx/model.onnx"]);
        Assert.Equal(1, file.ExitCode);
        Assert.Contains("--onnx_file needs --backend onnx", file.Stderr);
        var corpus = CliProcess.Run(["export", "--encoder", dir, "--output_dir", Path.Combine(dir, "out"), "--eval_data", input]);
        Assert.Equal(1, corpus.ExitCode);
        Assert.Contains("--eval_data and --corpus are for the ONNX parity gate: add --onnx", corpus.Stderr);
    }
}
