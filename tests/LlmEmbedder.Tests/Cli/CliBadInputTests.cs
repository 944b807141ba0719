using System.Text.Json.Nodes;
using LlmEmbedder.Tests.Checkpoints.Hub;

namespace LlmEmbedder.Tests.Cli;

/// <summary>
/// Each bad input gives exactly one clear line on stderr (no stack trace), a non-zero exit, and no output file.
/// </summary>
public sealed class CliBadInputTests : IDisposable
{
    private readonly string dir = TestPaths.NewTempDir("cli-bad");
    private readonly string model;
    private readonly string input;
    private readonly string output;

    public CliBadInputTests()
    {
        model = CliProcess.TinyChineseModel(dir);
        input = Path.Combine(dir, "input.txt");
        File.WriteAllText(input, "今天星期几\n北京是中国的首都。\n");
        output = Path.Combine(dir, "out.npy");
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private void AssertOneErrorLine(CliProcess.Result result, string expectedFragment)
    {
        Assert.True(result.ExitCode != 0, $"exit code 0; stderr: {result.Stderr}");
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith("llm-embedder: error: ", line);
        Assert.Contains(expectedFragment, line);
        Assert.False(File.Exists(output), "an output file was left behind");
        Assert.Empty(Directory.GetFiles(dir, "*.tmp*"));
    }

    private CliProcess.Result Encode(string modelArgument, IReadOnlyDictionary<string, string>? environment = null) =>
        CliProcess.Run(["encode", "--model", modelArgument, "--input", input, "--output", output], environment: environment);

    [Fact]
    public void TinyModelEncodesWhenNothingIsWrong()
    {
        var result = Encode(model);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.True(File.Exists(output));
    }

    [Fact]
    public void MissingConfigJson()
    {
        File.Delete(Path.Combine(model, "config.json"));
        AssertOneErrorLine(Encode(model), "config.json not found");
    }

    [Fact]
    public void UnsupportedArchitecture()
    {
        var path = Path.Combine(model, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!;
        config["model_type"] = "xlm-roberta";
        config["architectures"] = new JsonArray("XLMRobertaModel");
        File.WriteAllText(path, config.ToJsonString());
        AssertOneErrorLine(Encode(model), "unsupported architecture (model_type 'xlm-roberta'");
    }

    [Fact]
    public void TruncatedSafetensors()
    {
        var path = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 1000)]);
        AssertOneErrorLine(Encode(model), "truncated");
    }

    [Fact]
    public void WeightOfTheWrongShape()
    {
        var path = Path.Combine(model, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!;
        config["intermediate_size"] = 48;
        File.WriteAllText(path, config.ToJsonString());
        AssertOneErrorLine(Encode(model), "weight 'encoder.layer.0.intermediate.dense.bias' has shape [64] but the model expects [48]");
    }

    [Theory]
    [InlineData("[CLS]")]
    [InlineData("[SEP]")]
    [InlineData("[UNK]")]
    public void VocabWithoutASpecialToken(string token)
    {
        // Only vocab.txt and the original tokenizer_config.json (no tokenizer.json or added_tokens_decoder, which
        // would define the special token on their own, as in Hugging Face).
        File.Delete(Path.Combine(model, "tokenizer.json"));
        File.Copy(Path.Combine(TestPaths.ChineseVocabDir, "tokenizer_config.json"), Path.Combine(model, "tokenizer_config.json"), overwrite: true);
        var vocab = Path.Combine(model, "vocab.txt");
        File.WriteAllText(vocab, File.ReadAllText(vocab).Replace(token + "\n", "[unused-x]\n"));
        AssertOneErrorLine(Encode(model), $"vocab has no {token} token");
    }

    [Fact]
    public void EmptyInputFile()
    {
        File.WriteAllText(input, "");
        AssertOneErrorLine(Encode(model), "input file is empty");
    }

    [Fact]
    public void UnknownHubIdIs404FromTheHub()
    {
        using var hub = new FakeHub();
        var result = Encode("BAAI/no-such-model", new Dictionary<string, string>
        {
            ["HF_ENDPOINT"] = hub.Endpoint,
            ["HF_HOME"] = Path.Combine(dir, "hf-home"),
        });
        AssertOneErrorLine(result, $"model 'BAAI/no-such-model' not found at {hub.Endpoint} (HTTP 404)");
    }

    [Fact]
    public void UnreachableEndpoint()
    {
        var closedPort = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        closedPort.Start();
        int port = ((System.Net.IPEndPoint)closedPort.LocalEndpoint).Port;
        closedPort.Stop();
        var result = Encode("BAAI/bge-small-zh-v1.5", new Dictionary<string, string>
        {
            ["HF_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["HF_HOME"] = Path.Combine(dir, "hf-home"),
        });
        AssertOneErrorLine(result, $"cannot reach http://127.0.0.1:{port}");
    }

    [Fact]
    public void TypoOfALocalFolderIsNotTakenForAHubId()
    {
        var closedPort = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        closedPort.Start();
        int port = ((System.Net.IPEndPoint)closedPort.LocalEndpoint).Port;
        closedPort.Stop();
        var environment = new Dictionary<string, string> { ["HF_ENDPOINT"] = $"http://127.0.0.1:{port}", ["HF_HOME"] = Path.Combine(dir, "hf-home") };
        string[] args = ["encode", "--model", "models/bge", "--input", input, "--output", output];

        // Next to a models/ folder, models/bge is that folder's missing child, not the hub id "models/bge".
        var work = Path.Combine(dir, "work");
        Directory.CreateDirectory(Path.Combine(work, "models", "bge-small"));
        AssertOneErrorLine(CliProcess.Run(args, environment: environment, workingDirectory: work),
            "models/bge: folder not found (models/ exists here, so this is taken for a local path, not a hub id)");
        AssertOneErrorLine(CliProcess.Run(["encode", "--model", "models/bge-small/encoder", "--input", input, "--output", output],
            environment: environment, workingDirectory: dir), "models/bge-small/encoder: folder not found");

        // Elsewhere it may be a hub id; with the hub out of reach, the message says there is no such local folder either.
        AssertOneErrorLine(CliProcess.Run(args, environment: environment, workingDirectory: dir),
            $"no local folder models/bge, and cannot reach http://127.0.0.1:{port}");
    }

    [Fact]
    public void UnknownFlagIsOneClearErrorToo()
    {
        var result = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output, "--no_such_flag", "1"]);
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains(result.StderrLines, l => l.Contains("--no_such_flag"));
        Assert.DoesNotContain("   at ", result.Stderr);
    }
}
