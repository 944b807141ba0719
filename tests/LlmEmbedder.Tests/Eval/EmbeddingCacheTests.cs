using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints.Export;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Tests.Spec;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// The embedding cache returns exactly what encoding the same texts returns, without loading the model, and misses
/// whenever anything the embeddings depend on changes: the texts, the instruction, the encoder arguments, the model files.
/// </summary>
public sealed class EmbeddingCacheTests : IDisposable
{
    private static readonly string[] Texts = ["北京 北京是中国的首都。", "上海 上海是中国最大的城市。", "长江 长江是中国最长的河流。"];
    private readonly string dir = TestPaths.NewTempDir("emb-cache");
    private readonly string model;
    private readonly EmbeddingCache cache;

    public EmbeddingCacheTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        cache = new EmbeddingCache(Path.Combine(dir, "cache"));
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private EncodedTexts Encode(EncoderRequest request, IReadOnlyList<string> texts, string instruction = "", bool expectLoaded = true)
    {
        using var encoder = new CachingEncoder(request, cache);
        var result = encoder.Encode(texts, EmbeddingRole.Key, instruction, "{title} {text}", 2, "corpus");
        Assert.Equal(!result.FromCache, encoder.ModelLoaded);
        return result;
    }

    [Fact]
    public void ASecondEncodingComesFromTheCacheWithoutLoadingTheModelAndEqualsDirectEncoding()
    {
        var request = EncoderRequest.Open(model);
        var first = Encode(request, Texts);
        Assert.False(first.FromCache);
        var second = Encode(request, Texts);
        Assert.True(second.FromCache);
        Assert.Equal(first.Values, second.Values);
        Assert.Equal(32, second.Dimension);

        using var direct = SentenceEncoder.Load(model);
        Assert.Equal(direct.Encode(Texts, EmbeddingRole.Key, batchSize: 3), second.Values);

        var metadata = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(cache.MatrixPath(EmbeddingCacheKey.For(request, EmbeddingRole.Key, "", "{title} {text}", Texts)), ".json")))!;
        Assert.Equal("{title} {text}", metadata["key_template"]!.GetValue<string>());
        Assert.Equal(3, metadata["rows"]!.GetValue<int>());
    }

    [Fact]
    public void AnyChangeToWhatTheEmbeddingsDependOnMisses()
    {
        var request = EncoderRequest.Open(model);
        Assert.False(Encode(request, Texts).FromCache);
        Assert.True(Encode(request, Texts).FromCache);

        Assert.False(Encode(request, [.. Texts[..2], Texts[2] + "。"]).FromCache);
        Assert.False(Encode(request, Texts, instruction: "为这个句子生成表示以用于检索相关文章: ").FromCache);
        Assert.False(Encode(request with { Spec = request.Spec with { KeyMaxLength = 8 } }, Texts).FromCache);
        Assert.False(Encode(request with { Spec = request.Spec with { Pooling = PoolingMethod.Mean } }, Texts).FromCache);
        Assert.False(Encode(request with { Spec = request.Spec with { Metric = DenseMetric.Ip } }, Texts).FromCache);
        Assert.False(Encode(request, Texts.Reverse().ToArray()).FromCache);

        // Retraining into the same folder rewrites the weights: new size or time, so a miss.
        File.SetLastWriteTimeUtc(Path.Combine(model, "model.safetensors"), DateTime.UtcNow.AddMinutes(1));
        Assert.False(Encode(request, Texts).FromCache);
        Assert.True(Encode(request, Texts).FromCache);
    }

    [Fact]
    public void EachBackendAndOnnxFileHasItsOwnEntries()
    {
        var export = Path.Combine(dir, "export");
        SentenceTransformersExport.Export(new ExportOptions { EncoderDir = model, OutputDir = export, Onnx = new OnnxExportOptions { Int8 = true } });
        var torch = EncoderRequest.Open(export);
        var onnx = torch with { Backend = new InferenceBackend(BackendKind.Onnx) };
        var int8 = torch with { Backend = new InferenceBackend(BackendKind.Onnx, OnnxEmbeddingModel.Int8File) };

        var torchVectors = Encode(torch, Texts);
        Assert.False(torchVectors.FromCache);
        var onnxVectors = Encode(onnx, Texts);
        Assert.False(onnxVectors.FromCache);
        Assert.False(Encode(int8, Texts).FromCache);
        Assert.True(Encode(torch, Texts).FromCache);
        Assert.True(Encode(onnx, Texts).FromCache);
        Assert.True(Encode(int8, Texts).FromCache);
        Assert.InRange(TinyRuns.MaxAbsDifference(torchVectors.Values, onnxVectors.Values), 0, 1e-4);

        // A TorchSharp entry is described as before backends existed, so older caches still hit.
        var torchKey = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(cache.MatrixPath(EmbeddingCacheKey.For(torch, EmbeddingRole.Key, "", "{title} {text}", Texts)), ".json")))!;
        Assert.Null(torchKey["backend"]);
        var int8Key = JsonNode.Parse(File.ReadAllText(Path.ChangeExtension(cache.MatrixPath(EmbeddingCacheKey.For(int8, EmbeddingRole.Key, "", "{title} {text}", Texts)), ".json")))!;
        Assert.Equal("onnx", int8Key["backend"]!.GetValue<string>());
        Assert.Equal(OnnxEmbeddingModel.Int8File, int8Key["onnx_file"]!.GetValue<string>());
    }

    [Fact]
    public void ADamagedEntryIsEncodedAgainAndRewritten()
    {
        var request = EncoderRequest.Open(model);
        var first = Encode(request, Texts);
        var path = cache.MatrixPath(EmbeddingCacheKey.For(request, EmbeddingRole.Key, "", "{title} {text}", Texts));
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..100]);
        var again = Encode(request, Texts);
        Assert.False(again.FromCache);
        Assert.Equal(first.Values, again.Values);
        Assert.True(Encode(request, Texts).FromCache);
    }

    [Fact]
    public void DefaultDirectoryFollowsTheEnvironment()
    {
        Assert.Equal("/x/cache", EmbeddingCache.DefaultDirectory(name => name == "LLM_EMBEDDER_CACHE" ? "/x/cache" : "/ignored"));
        Assert.Equal(Path.Combine("/xdg", "llm-embedder"), EmbeddingCache.DefaultDirectory(name => name == "XDG_CACHE_HOME" ? "/xdg" : null));
        Assert.EndsWith(Path.Combine(".cache", "llm-embedder"), EmbeddingCache.DefaultDirectory(_ => null));
    }
}
