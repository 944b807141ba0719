using System.Net;
using System.Net.Sockets;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Data;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Server;
using LlmEmbedder.Tests.Cli;

namespace LlmEmbedder.Tests.Serving;

/// <summary>
/// A tiny Chinese model whose encoder spec uses every part of a spec: mean pooling, two tasks with different query
/// and key instructions, and query and key max lengths that differ. A library or server that ignores any of them
/// gives other vectors than `encode`.
/// </summary>
internal static class ServingModel
{
    public const int QueryMaxLength = 24, KeyMaxLength = 32;

    public static readonly Instruction Qa = new("问题：", "段落：");
    public static readonly Instruction Icl = new("示例查询：", "");

    public static string Create(string parent, string name = "serving-model")
    {
        var dir = CliProcess.TinyChineseModel(parent, layers: 2, name: name);
        var spec = new EncoderSpec
        {
            Pooling = PoolingMethod.Mean,
            Metric = DenseMetric.Cos,
            QueryMaxLength = QueryMaxLength,
            KeyMaxLength = KeyMaxLength,
            Instructions = new EncoderInstructions("test", null, new SortedDictionary<string, Instruction>(StringComparer.Ordinal) { ["icl"] = Icl, ["qa"] = Qa }),
        };
        spec.Save(dir);
        return dir;
    }

    /// <summary>Texts that differ in length, script and tokens (none over the max lengths).</summary>
    public static readonly string[] Texts =
    [
        "如何办理护照？",
        "北京是中华人民共和国的首都。",
        "Hello world",
        "机器学习 machine learning 是人工智能的一个分支",
        "短",
        "上海的天气怎么样，明天会下雨吗",
    ];

    /// <summary>`llm-embedder encode` of <paramref name="texts"/>: the reference every other way of embedding must equal.</summary>
    public static (float[] Values, int Rows, int Columns) Encode(string model, IEnumerable<string> texts, string role, string task, string workDir,
        params string[] moreFlags)
    {
        var input = Path.Combine(workDir, $"encode-{Guid.NewGuid():N}.txt");
        var output = Path.ChangeExtension(input, ".npy");
        File.WriteAllText(input, string.Join("\n", texts) + "\n");
        var run = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output, "--role", role, "--task", task, .. moreFlags]);
        Assert.True(run.ExitCode == 0, run.Stderr);
        return Npy.ReadFloat32(output);
    }

    /// <summary>`llm-embedder tokenize` token counts of each text (as given: instruction included by the caller).</summary>
    public static int[] TokenCounts(string model, IEnumerable<string> texts, int maxLength)
    {
        var run = CliProcess.Run(["tokenize", "--model", model, "--max_length", maxLength.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            stdin: string.Join("\n", texts) + "\n");
        Assert.True(run.ExitCode == 0, run.Stderr);
        return run.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => System.Text.Json.JsonSerializer.Deserialize<int[]>(line)!.Length).ToArray();
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static Task<EmbeddingServer> StartInProcess(string model, string? apiKey = null, string? task = null, int maxInputs = 2048,
        TextEmbedderOptions? embedderOptions = null, int? dimensions = null) =>
        EmbeddingServer.StartAsync(() => TextEmbedder.Load(model, embedderOptions), new EmbeddingServerOptions
        {
            ModelName = "serving-model",
            Urls = ["http://127.0.0.1:0"],
            ApiKey = apiKey,
            Task = task,
            MaxInputs = maxInputs,
            Dimensions = dimensions,
            HandleSignals = false,
        });
}

/// <summary>Asserts embeddings equal a reference within what two batchings of the same fp32 model differ by.</summary>
internal static class EmbeddingAssert
{
    public const double Tolerance = 1e-6;

    public static void Equal(float[] expected, ReadOnlySpan<float> actual, string what, double tolerance = Tolerance)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} values, expected {expected.Length}");
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= tolerance, $"{what}: max |difference| {worst:E2} > {tolerance:E0}");
    }

    /// <summary>Row <paramref name="row"/> of a row-major matrix.</summary>
    public static float[] Row(float[] matrix, int columns, int row) => matrix.AsSpan(row * columns, columns).ToArray();

    /// <summary>The first <paramref name="dimensions"/> values, scaled to unit length: what OpenAI's dimensions means, by hand.</summary>
    public static float[] Shortened(float[] vector, int dimensions)
    {
        var head = vector[..dimensions];
        double norm = Math.Sqrt(head.Sum(v => (double)v * v));
        return head.Select(v => (float)(v / norm)).ToArray();
    }
}
