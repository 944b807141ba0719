using System.Globalization;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Modeling;
using LlmEmbedder.Tests.Reference;
using LlmEmbedder.Tests.Spec;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Export;

/// <summary>
/// export --onnx of real pretrained models (snowflake-arctic-embed-xs with CLS pooling, all-MiniLM-L6-v2 with mean
/// pooling, converted from the ONNX graphs of the SentenceTransformers.* packages): the onnx checker accepts the file,
/// and ONNX Runtime running it agrees within 1e-4 with three independent things on padded mixed-length batches that
/// include a row cut at 512 tokens: the packaged original graph (last_hidden_state, and pooled + normalised here in
/// double), our TorchSharp encoder (sentence_embedding), and `encode` against `encode --backend onnx`.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class OnnxExportCompareToPackagedGraphTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("onnx-export");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    public static TheoryData<string, string> Models => new() { { "arctic", "cls" }, { "minilm", "mean" } };

    [Theory]
    [MemberData(nameof(Models))]
    public void ExportedGraphMatchesThePackagedGraphAndTorchSharpWithin1e4(string modelName, string pooling)
    {
        var reference = modelName == "arctic" ? PretrainedOnnxModels.ArcticXs : PretrainedOnnxModels.MiniLM;
        var export = Path.Combine(dir, modelName);
        var result = OnnxExportChecks.Export(reference.HuggingFaceDir, export, "--onnx", "--pooling_method", pooling);
        output.WriteLine(result.Stderr);
        Assert.Contains("onnx/model.onnx", result.Stdout.Split('\n'));
        var onnxPath = Path.Combine(export, "onnx", "model.onnx");
        int hidden = reference.Config.HiddenSize;
        OnnxExportChecks.AssertInterface(OnnxExportChecks.Check(onnxPath), hidden, hidden);

        using var encoder = SentenceEncoder.Load(export);
        Assert.Equal(Pooling.Parse(pooling), encoder.Spec.Pooling);
        double worstHidden = 0, worstPooled = 0, worstTorch = 0;
        int longest = 0;
        foreach (var chunk in OnnxExportChecks.Texts.Chunk(OnnxExportChecks.BatchSize))
        {
            var batch = encoder.Tokenizer.EncodeBatch(chunk, 512);
            longest = Math.Max(longest, batch.SequenceLength);
            var (lastHidden, embeddings) = OnnxExportChecks.Run(onnxPath, batch);
            var packaged = reference.RunLastHiddenState(batch.InputIds, batch.AttentionMask, new long[batch.InputIds.Length], batch.BatchSize, batch.SequenceLength);
            worstHidden = Math.Max(worstHidden, OnnxExportChecks.MaxAbsOnRealTokens(lastHidden, packaged, batch.AttentionMask, hidden));
            var pooledReference = ModelParityWithOnnxRuntimeTests.PoolAndNormalize(packaged, batch.AttentionMask, batch.BatchSize, batch.SequenceLength, hidden, pooling);
            worstPooled = Math.Max(worstPooled, TinyRuns.MaxAbsDifference(embeddings, pooledReference));
            worstTorch = Math.Max(worstTorch, TinyRuns.MaxAbsDifference(embeddings, encoder.Embed(batch)));
        }
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{modelName}: max |Δ| last_hidden_state vs packaged graph {worstHidden:E2}, sentence_embedding vs packaged graph pooled {worstPooled:E2}, vs TorchSharp {worstTorch:E2}"));
        Assert.Equal(512, longest);
        Assert.InRange(worstHidden, 0, OnnxExportChecks.Tolerance);
        Assert.InRange(worstPooled, 0, OnnxExportChecks.Tolerance);
        Assert.InRange(worstTorch, 0, OnnxExportChecks.Tolerance);

        // encode through ONNX Runtime equals encode through TorchSharp.
        var input = Path.Combine(dir, "texts.txt");
        File.WriteAllText(input, string.Join("\n", OnnxExportChecks.Texts) + "\n");
        var torchNpy = Path.Combine(dir, $"{modelName}-torch.npy");
        var onnxNpy = Path.Combine(dir, $"{modelName}-onnx.npy");
        var torchRun = CliProcess.Run(["encode", "--model", export, "--input", input, "--output", torchNpy, "--batch_size", "4"]);
        var onnxRun = CliProcess.Run(["encode", "--model", export, "--input", input, "--output", onnxNpy, "--batch_size", "4", "--backend", "onnx"]);
        Assert.True(torchRun.ExitCode == 0, torchRun.Stderr);
        Assert.True(onnxRun.ExitCode == 0, onnxRun.Stderr);
        var (torchValues, rows, columns) = Npy.ReadFloat32(torchNpy);
        var (onnxValues, onnxRows, onnxColumns) = Npy.ReadFloat32(onnxNpy);
        Assert.Equal((OnnxExportChecks.Texts.Length, hidden), (rows, columns));
        Assert.Equal((rows, columns), (onnxRows, onnxColumns));
        double worstEncode = TinyRuns.MaxAbsDifference(torchValues, onnxValues);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"encode vs encode --backend onnx: max |Δ| {worstEncode:E2}"));
        Assert.InRange(worstEncode, 0, OnnxExportChecks.Tolerance);
    }
}
