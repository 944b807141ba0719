using System.Diagnostics;
using LlmEmbedder.Modeling;
using Xunit.Abstractions;

namespace LlmEmbedder.Tests.Export;

/// <summary>
/// A random-weight model of the exact bge-large-zh-v1.5 shape (1.2 GiB of fp32 weights) exports to ONNX with its
/// weights as external data beside a small model.onnx, passes the parity gate (a padded batch with a 512-token row),
/// and the onnx checker accepts the pair.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class OnnxExportLargeModelTests(ITestOutputHelper output) : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("onnx-bge-large");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void BgeLargeShapeExportsWithExternalDataAndPassesTheGate()
    {
        var model = Path.Combine(dir, "bge-large");
        RandomModelFolder.Create(TestPaths.Fixture("bge-large-zh-v1.5", "config.json"), TestPaths.ChineseVocabDir, model, seed: 7);
        var export = Path.Combine(dir, "export");
        var clock = Stopwatch.StartNew();
        var result = OnnxExportChecks.Export(model, export, "--onnx");
        output.WriteLine($"export took {clock.Elapsed.TotalSeconds:F0} s");
        output.WriteLine(result.Stderr);
        Assert.Contains("(weights as external data)", result.Stderr);
        Assert.Contains("(gate 1E-4: passed)", result.Stderr);
        Assert.Contains("onnx/model.onnx_data", result.Stdout.Split('\n'));

        var onnxPath = Path.Combine(export, "onnx", "model.onnx");
        Assert.InRange(new FileInfo(onnxPath).Length, 1, 1 << 20);
        Assert.InRange(new FileInfo(onnxPath + "_data").Length, 1_200_000_000L, 1_400_000_000L);
        var check = OnnxExportChecks.Check(onnxPath);
        OnnxExportChecks.AssertInterface(check, 1024, 1024);
        // Every weight of the 24 layers (6 matrices, 6 biases, 4 LayerNorm vectors each) lives in model.onnx_data; only small constants (shapes, axes) stay inline.
        Assert.InRange(check["external_initializers"]!.GetValue<int>(), 24 * 16, check["initializers"]!.GetValue<int>());
    }
}
