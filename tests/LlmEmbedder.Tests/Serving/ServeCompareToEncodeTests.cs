using System.ClientModel;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Server;
using LlmEmbedder.Tests.Cli;
using Microsoft.Extensions.AI;
using OpenAI;
using OpenAI.Embeddings;
using AIOptions = Microsoft.Extensions.AI.EmbeddingGenerationOptions;
using OpenAIOptions = OpenAI.Embeddings.EmbeddingGenerationOptions;

namespace LlmEmbedder.Tests.Serving;

/// <summary>The server, running in this process on a free port, over <see cref="ServingModel"/>: requests that name no
/// task get qa's instructions; /v1 needs <see cref="ApiKey"/>; at most 8 texts a request.</summary>
public class ServedModel : IAsyncLifetime
{
    public const string ApiKey = "test-key-123";

    public ServedModel()
        : this(onnx: false)
    {
    }

    protected ServedModel(bool onnx) => Onnx = onnx;

    /// <summary>Whether the server runs the model's `export --onnx` graph on ONNX Runtime.</summary>
    public bool Onnx { get; }

    /// <summary>How close the served vectors are to `encode`'s: batching noise for TorchSharp, the export's parity gate for ONNX.</summary>
    public double Tolerance => Onnx ? 1e-4 : EmbeddingAssert.Tolerance;

    public string Dir { get; } = TestPaths.NewTempDir("serve");
    public string Model { get; private set; } = "";
    public EmbeddingServer Server { get; private set; } = null!;
    public Uri BaseAddress { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Model = ServingModel.Create(Dir);
        var served = Model;
        var options = new TextEmbedderOptions();
        if (Onnx)
        {
            served = Path.Combine(Dir, "serving-model-onnx");
            var export = CliProcess.Run(["export", "--encoder", Model, "--output_dir", served, "--onnx"]);
            Assert.True(export.ExitCode == 0, export.Stderr);
            options = options with { Backend = new InferenceBackend(BackendKind.Onnx) };
        }
        Server = await ServingModel.StartInProcess(served, apiKey: ApiKey, task: "qa", maxInputs: 8, embedderOptions: options);
        await Server.ModelLoaded;
        BaseAddress = new Uri(Server.Addresses.Single());
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        Directory.Delete(Dir, recursive: true);
    }

    public HttpClient Client(bool authorized = true)
    {
        var client = new HttpClient { BaseAddress = BaseAddress };
        if (authorized) client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ApiKey);
        return client;
    }

    /// <summary>The OpenAI .NET client, with <paramref name="path"/> as its base URL's path (a route picks the side).</summary>
    public EmbeddingClient OpenAIClient(string path = "/v1") =>
        new("serving-model", new ApiKeyCredential(ApiKey), new OpenAIClientOptions { Endpoint = new Uri(BaseAddress, path) });
}

/// <summary>The same server on ONNX Runtime (`serve --backend onnx`) over the model's exported graph.</summary>
public sealed class ServedOnnxModel() : ServedModel(onnx: true);

/// <summary>The server's acceptance on the ONNX Runtime backend: the same tests, within the export's 1e-4.</summary>
public sealed class ServeOnnxCompareToEncodeTests(ServedOnnxModel served) : ServeCompareToEncodeTests<ServedOnnxModel>(served), IClassFixture<ServedOnnxModel>;

/// <summary>The server's acceptance on TorchSharp, with the library's own tests.</summary>
public sealed class ServeCompareToEncodeTests(ServedModel served) : ServeCompareToEncodeTests<ServedModel>(served), IClassFixture<ServedModel>;

/// <summary>
/// Acceptance of the server and the library: the OpenAI .NET client (and Microsoft.Extensions.AI over it) pointed at
/// `serve`, raw HTTP in both encodings, and our IEmbeddingGenerator all return what `llm-embedder encode` returns for
/// the same texts, side and task (1e-6); `dimensions` is the first N values re-normalised; usage counts the tokens
/// `llm-embedder tokenize` gives the instruction + text.
/// </summary>
public abstract class ServeCompareToEncodeTests<TServed>(TServed served) where TServed : ServedModel
{
    private static readonly string[] Texts = ServingModel.Texts;

    [Fact]
    public async Task OpenAIClientKeysEqualEncodeAndUsageEqualsTokenizerCounts()
    {
        var expected = ServingModel.Encode(served.Model, Texts, "key", "qa", served.Dir);
        var result = (await served.OpenAIClient().GenerateEmbeddingsAsync(Texts, new OpenAIOptions(), CancellationToken.None)).Value;
        Assert.Equal(Texts.Length, result.Count);
        for (int i = 0; i < Texts.Length; i++)
        {
            Assert.Equal(i, result[i].Index);
            EmbeddingAssert.Equal(EmbeddingAssert.Row(expected.Values, expected.Columns, i), result[i].ToFloats().Span, $"key {i}", served.Tolerance);
        }
        var counts = ServingModel.TokenCounts(served.Model, Texts.Select(t => ServingModel.Qa.Key + t), ServingModel.KeyMaxLength);
        Assert.Equal(counts.Sum(), (int)result.Usage.InputTokenCount);
        Assert.Equal(counts.Sum(), (int)result.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task OpenAIClientOnTheQueryRouteEqualsEncodeOfQueriesAndDimensionsShortenAndRenormalise()
    {
        var expected = ServingModel.Encode(served.Model, Texts, "query", "qa", served.Dir);
        var client = served.OpenAIClient("/v1/query");
        var full = (await client.GenerateEmbeddingsAsync(Texts)).Value;
        var shortened = (await client.GenerateEmbeddingsAsync(Texts, new OpenAIOptions { Dimensions = 8 })).Value;
        for (int i = 0; i < Texts.Length; i++)
        {
            var reference = EmbeddingAssert.Row(expected.Values, expected.Columns, i);
            EmbeddingAssert.Equal(reference, full[i].ToFloats().Span, $"query {i}", served.Tolerance);
            EmbeddingAssert.Equal(EmbeddingAssert.Shortened(reference, 8), shortened[i].ToFloats().Span, $"query {i} at 8 dimensions", served.Tolerance);
        }
        var counts = ServingModel.TokenCounts(served.Model, Texts.Select(t => ServingModel.Qa.Query + t), ServingModel.QueryMaxLength);
        Assert.Equal(counts.Sum(), (int)full.Usage.InputTokenCount);
    }

    [Fact]
    public async Task MicrosoftExtensionsAIOverTheOpenAIClientEqualsEncode()
    {
        var expected = ServingModel.Encode(served.Model, Texts, "key", "qa", served.Dir);
        using var generator = served.OpenAIClient().AsIEmbeddingGenerator();
        var result = await generator.GenerateAsync(Texts, new AIOptions { Dimensions = 16 });
        for (int i = 0; i < Texts.Length; i++)
            EmbeddingAssert.Equal(EmbeddingAssert.Shortened(EmbeddingAssert.Row(expected.Values, expected.Columns, i), 16), result[i].Vector.Span, $"key {i}", served.Tolerance);
    }

    [Fact]
    public async Task FloatAndBase64EncodingsCarryTheSameFloatsAndTheTaskFieldPicksItsInstruction()
    {
        var expected = ServingModel.Encode(served.Model, Texts, "query", "icl", served.Dir);
        using var http = served.Client();
        var body = new JsonObject { ["input"] = new JsonArray(Texts.Select(t => (JsonNode)t!).ToArray()), ["input_type"] = "query", ["task"] = "icl" };
        var asFloats = await Post(http, body);
        body["encoding_format"] = "base64";
        var asBase64 = await Post(http, body);
        for (int i = 0; i < Texts.Length; i++)
        {
            var floats = asFloats["data"]![i]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
            var bytes = Convert.FromBase64String(asBase64["data"]![i]!["embedding"]!.GetValue<string>());
            var decoded = new float[bytes.Length / 4];
            for (int j = 0; j < decoded.Length; j++) decoded[j] = BitConverter.ToSingle(bytes, j * 4);
            Assert.Equal(floats, decoded);
            EmbeddingAssert.Equal(EmbeddingAssert.Row(expected.Values, expected.Columns, i), floats, $"icl query {i}", served.Tolerance);
            Assert.Equal(i, asFloats["data"]![i]!["index"]!.GetValue<int>());
        }
        Assert.Equal("list", asFloats["object"]!.GetValue<string>());
        Assert.Equal("serving-model", asFloats["model"]!.GetValue<string>());
        var counts = ServingModel.TokenCounts(served.Model, Texts.Select(t => ServingModel.Icl.Query + t), ServingModel.QueryMaxLength);
        Assert.Equal(counts.Sum(), asFloats["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task TruncateTrueCutsAnOverLongTextAsEncodeDoes()
    {
        var longText = string.Concat(Enumerable.Repeat("很长的段落文本。", 40));
        var expected = ServingModel.Encode(served.Model, [longText], "key", "qa", served.Dir);
        using var http = served.Client();
        var response = await Post(http, new JsonObject { ["input"] = longText, ["truncate"] = true });
        var floats = response["data"]![0]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
        EmbeddingAssert.Equal(expected.Values, floats, "truncated key", served.Tolerance);
        Assert.Equal(ServingModel.KeyMaxLength, response["usage"]!["prompt_tokens"]!.GetValue<int>());
    }

    [Fact]
    public async Task OurEmbeddingGeneratorEqualsEncodeWithMetadataDimensionsAndInputType()
    {
        var queries = ServingModel.Encode(served.Model, Texts, "query", "qa", served.Dir);
        var keys = ServingModel.Encode(served.Model, Texts, "key", "qa", served.Dir);
        using var embedder = TextEmbedder.Load(served.Model);
        using var generator = embedder.AsKeyGenerator("qa");
        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.Equal(keys.Columns, metadata.DefaultModelDimensions);
        Assert.Equal("serving-model", metadata.DefaultModelId);

        var asKeys = await generator.GenerateAsync(Texts);
        var asQueries = await generator.GenerateAsync(Texts, new AIOptions { AdditionalProperties = new() { ["input_type"] = "query" } });
        var shortKeys = await generator.GenerateAsync(Texts, new AIOptions { Dimensions = 5 });
        for (int i = 0; i < Texts.Length; i++)
        {
            var key = EmbeddingAssert.Row(keys.Values, keys.Columns, i);
            EmbeddingAssert.Equal(key, asKeys[i].Vector.Span, $"key {i}");
            EmbeddingAssert.Equal(EmbeddingAssert.Row(queries.Values, queries.Columns, i), asQueries[i].Vector.Span, $"query {i}");
            EmbeddingAssert.Equal(EmbeddingAssert.Shortened(key, 5), shortKeys[i].Vector.Span, $"key {i} at 5 dimensions");
        }
        var counts = ServingModel.TokenCounts(served.Model, Texts.Select(t => ServingModel.Qa.Key + t), ServingModel.KeyMaxLength);
        Assert.Equal(counts.Sum(), (int)asKeys.Usage!.InputTokenCount!);
        await Assert.ThrowsAsync<EmbedderException>(() => generator.GenerateAsync(Texts, new AIOptions { Dimensions = keys.Columns + 1 }));

        // The library's own calls are the same vectors.
        var direct = await embedder.EmbedQueriesAsync(Texts, "qa");
        for (int i = 0; i < Texts.Length; i++) EmbeddingAssert.Equal(EmbeddingAssert.Row(queries.Values, queries.Columns, i), direct[i], $"EmbedQueriesAsync {i}");
    }

    [Fact]
    public async Task TheLibraryInBf16EqualsEncodeInBf16()
    {
        var expected = ServingModel.Encode(served.Model, Texts, "query", "qa", served.Dir, "--dtype", "bf16");
        using var embedder = TextEmbedder.Load(served.Model, new TextEmbedderOptions { Overrides = new EncoderSpecOverrides(Dtype: InferenceDtype.BFloat16) });
        Assert.Equal(InferenceDtype.BFloat16, embedder.Spec.Dtype);
        var vectors = await embedder.EmbedQueriesAsync(Texts, "qa");
        for (int i = 0; i < Texts.Length; i++) EmbeddingAssert.Equal(EmbeddingAssert.Row(expected.Values, expected.Columns, i), vectors[i], $"bf16 query {i}");
    }

    [Fact]
    public async Task ServeDimensionsSetsTheSizeOfRequestsThatGiveNone()
    {
        var expected = ServingModel.Encode(served.Model, Texts, "key", "qa", served.Dir);
        await using var server = await ServingModel.StartInProcess(served.Model, task: "qa", dimensions: 8);
        await server.ModelLoaded;
        using var http = new HttpClient { BaseAddress = new Uri(server.Addresses.Single()) };
        var response = await Post(http, new JsonObject { ["input"] = new JsonArray(Texts.Select(t => (JsonNode)t!).ToArray()) });
        var wider = await Post(http, new JsonObject { ["input"] = Texts[0], ["dimensions"] = 12 });
        for (int i = 0; i < Texts.Length; i++)
        {
            var floats = response["data"]![i]!["embedding"]!.AsArray().Select(v => v!.GetValue<float>()).ToArray();
            EmbeddingAssert.Equal(EmbeddingAssert.Shortened(EmbeddingAssert.Row(expected.Values, expected.Columns, i), 8), floats, $"key {i} at the server's 8");
        }
        Assert.Equal(12, wider["data"]![0]!["embedding"]!.AsArray().Count);

        await using var tooWide = await ServingModel.StartInProcess(served.Model, dimensions: expected.Columns + 1);
        var failure = await Assert.ThrowsAsync<EmbedderException>(() => tooWide.ModelLoaded);
        Assert.Contains("--dimensions", failure.Message);
    }

    [Fact]
    public async Task HealthModelsAndMetricsAnswer()
    {
        using var http = served.Client(authorized: false);
        Assert.Equal("ok", JsonNode.Parse(await http.GetStringAsync("/health"))!["status"]!.GetValue<string>());
        using var authorized = served.Client();
        var models = JsonNode.Parse(await authorized.GetStringAsync("/v1/models"))!;
        Assert.Equal("serving-model", models["data"]![0]!["id"]!.GetValue<string>());
        await Post(authorized, new JsonObject { ["input"] = "你好" });
        var metrics = await http.GetStringAsync("/metrics");
        foreach (var name in new[] { "llm_embedder_requests_total{route=\"/v1/embeddings\",status=\"200\"}", "llm_embedder_request_duration_seconds_bucket",
                     "llm_embedder_batch_size_bucket", "llm_embedder_queue_depth", "llm_embedder_tokens_total", "llm_embedder_tokens_per_second", "llm_embedder_model_ready 1" })
            Assert.Contains(name, metrics);
    }

    private static async Task<JsonNode> Post(HttpClient http, JsonObject body)
    {
        using var response = await http.PostAsync("/v1/embeddings", JsonContent.Create(body));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }
}
