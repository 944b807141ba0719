using System.Diagnostics;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Modeling;

/// <summary>A random-weight model of the exact bge-large-zh-v1.5 shape saves, reloads bit-identically and encodes.</summary>
[Collection(HeavyTests.Name)]
public sealed class LargeModelRoundTripTests(ITestOutputHelper output)
{
    [Fact]
    public void BgeLargeShapeSavesReloadsBitIdenticallyAndEncodes()
    {
        var dir = TestPaths.NewTempDir("bge-large");
        try
        {
            var config = BertConfig.Load(TestPaths.Fixture("bge-large-zh-v1.5", "config.json"));
            long parameterCount;
            Dictionary<string, Tensor> saved;
            using (var model = new BertModel(config))
            {
                model.InitializeRandomWeights(new Generator(7));
                parameterCount = model.parameters().Sum(p => p.NumberOfElements);
                saved = model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());
                config.Save(Path.Combine(dir, "config.json"));
                WeightFiles.SaveSafetensors(dir, model.state_dict());
            }
            BertTokenizer.FromDirectory(TestPaths.ChineseVocabDir).Save(dir);

            // About 326M parameters without the pooler (bge-large-zh-v1.5 has 326M with it).
            Assert.InRange(parameterCount, 320_000_000, 330_000_000);

            using var encoder = SentenceEncoder.Load(dir);
            foreach (var (name, parameter) in encoder.Model.state_dict())
                Assert.True(saved[name].bytes.SequenceEqual(parameter.bytes), $"{name} changed in the round trip");

            string[] texts = ["今天星期几", "北京是中国的首都。", "LlmEmbedder.NET 把 BGE 带到 .NET", ""];
            var embeddings = encoder.Encode(texts, EmbeddingRole.Key, batchSize: 4);
            Assert.Equal(texts.Length * 1024, embeddings.Length);
            for (int row = 0; row < texts.Length; row++)
            {
                var vector = embeddings.AsSpan(row * 1024, 1024);
                double norm = Math.Sqrt(vector.ToArray().Sum(v => (double)v * v));
                Assert.InRange(norm, 0.9999, 1.0001);
            }
            foreach (var t in saved.Values) t.Dispose();

            using var process = Process.GetCurrentProcess();
            process.Refresh();
            output.WriteLine($"bge-large shape: {parameterCount:N0} parameters; peak RSS of the test process {process.PeakWorkingSet64 / (1 << 20):N0} MiB; " +
                $"model.safetensors {new FileInfo(Path.Combine(dir, "model.safetensors")).Length / (1 << 20):N0} MiB");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
