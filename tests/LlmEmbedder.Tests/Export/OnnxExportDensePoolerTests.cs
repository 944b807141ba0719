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
        Assert.Contains("### ONNX Runtime\n\n`onnx/model.onnx`: inputs", File.ReadAllText(Path.Combine(export, "README.md")));

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

        // The ONNX backend never loads libtorch (the dynamic loader lists every library a process opens).
        var loads = CliProcess.Run(["encode", "--model", export, "--input", Path.Combine(dir, "texts.txt"), "--output", Path.Combine(dir, "ld.npy"), "--backend", "onnx"],
            environment: new Dictionary<string, string> { ["LD_DEBUG"] = "libs" });
        Assert.True(loads.ExitCode == 0, loads.Stderr);
        Assert.Contains("libonnxruntime", loads.Stderr);
        Assert.DoesNotContain("libtorch", loads.Stderr);

        // The graph pools CLS and projects; asking it for mean pooling, or to skip normalisation, is refused, not ignored.
        AssertEncodeFails(export, "the ONNX graph computes cls pooling, not mean", "--backend", "onnx", "--pooling_method", "mean");
        AssertEncodeFails(export, "L2-normalised vectors", "--backend", "onnx", "--dense_metric", "ip");
        // The training output itself was never exported to ONNX.
        AssertEncodeFails(run, "has no ONNX export (onnx/model.onnx not found)", "--backend", "onnx");
    }

    [Fact]
    public void OnnxOnlyFlagsAreCheckedBeforeAnythingIsRead()
    {
        AssertEncodeFails(dir, "--dtype bf16 is a TorchSharp setting", "--backend", "onnx", "--dtype", "bf16");
        AssertEncodeFails(dir, "--onnx_file needs --backend onnx", "--onnx_file", "onnx/model.onnx");
        var corpus = CliProcess.Run(["export", "--encoder", dir, "--output_dir", Path.Combine(dir, "out"), "--eval_data", Path.Combine(dir, "eval.jsonl")]);
        Assert.Equal(1, corpus.ExitCode);
        Assert.Contains("--eval_data and --corpus are for the ONNX parity gate: add --onnx", corpus.Stderr);
    }

    /// <summary>
    /// Outputs scaled to about 1e6 (the last LayerNorm's weight × 1e6, no normalisation): fp32's rounding alone then
    /// separates ONNX Runtime from TorchSharp by far more than 1e-4, the gate fails, and neither the export folder nor
    /// a temporary one is left behind.
    /// </summary>
    [Fact]
    public void AGraphThatDiffersByMoreThanTheToleranceFailsTheExportAndWritesNothing()
    {
        var model = CliProcess.TinyChineseModel(dir);
        var weights = WeightFiles.Load(model);
        try
        {
            using (TorchSharp.torch.no_grad())
                weights["encoder.layer.0.output.LayerNorm.weight"].mul_(1e6);
            Safetensors.Write(Path.Combine(model, WeightFiles.SafetensorsName), weights);
        }
        finally
        {
            foreach (var tensor in weights.Values) tensor.Dispose();
        }
        var export = Path.Combine(dir, "export");
        var result = CliProcess.Run(["export", "--encoder", model, "--output_dir", export, "--onnx", "--dense_metric", "ip"]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("the ONNX export differs from the TorchSharp encoder by", result.Stderr);
        Assert.Contains("nothing was written", result.Stderr);
        Assert.False(Directory.Exists(export));
        Assert.Empty(Directory.EnumerateDirectories(dir, ".incomplete-*"));
    }

    /// <summary>encode of texts.txt exits 1 with <paramref name="message"/> on one line, no stack trace, and writes nothing.</summary>
    private void AssertEncodeFails(string model, string message, params string[] flags)
    {
        var npy = Path.Combine(dir, "failed.npy");
        var result = CliProcess.Run(["encode", "--model", model, "--input", Path.Combine(dir, "texts.txt"), "--output", npy, .. flags]);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(message, result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr);
        Assert.False(File.Exists(npy));
    }
}
