using System.Text;
using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Cli;

/// <summary>
/// --encoding and strict UTF-8 on every command that reads text: a GB18030 file (what Chinese Windows writes) without
/// --encoding is one "file:line: not valid UTF-8" error, exit 1, no stack trace and no output; with --encoding gb18030
/// it gives exactly what its UTF-8 twin gives. The GB18030 bytes are .NET's, which TextFileTests ties to Python's.
/// </summary>
public sealed class CliTextEncodingTests : IDisposable
{
    private const string Utf8Hint = "if the file is GB18030/GBK or UTF-16, pass --encoding gb18030 or --encoding utf-16";
    private static readonly Encoding Gb18030 = TextEncoding.Parse("gb18030").Encoding;
    private static readonly string EncodingsDir = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Data", "Encodings");
    private readonly string dir = TestPaths.NewTempDir("cli-encoding");
    private readonly string model;

    public CliTextEncodingTests() => model = CliProcess.TinyChineseModel(dir);

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string Write(string name, string text, Encoding encoding)
    {
        var path = Path.Combine(dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, encoding.GetBytes(text));
        return path;
    }

    private static void AssertOneError(CliProcess.Result result, string expected, string? mustNotExist)
    {
        Assert.True(result.ExitCode == 1, $"exit code {result.ExitCode}; stderr: {result.Stderr}");
        Assert.Equal("llm-embedder: error: " + expected, Assert.Single(result.StderrLines));
        Assert.DoesNotContain("   at ", result.Stderr);
        if (mustNotExist is not null) Assert.False(File.Exists(mustNotExist) || Directory.Exists(mustNotExist), $"{mustNotExist} was created");
    }

    [Fact]
    public void TokenizeReadsGb18030StdinOnlyWithEncoding()
    {
        var text = File.ReadAllText(Path.Combine(EncodingsDir, "zh.utf8.txt"), new UTF8Encoding(false));
        var utf8 = CliProcess.Run(["tokenize", "--model", model], stdinBytes: Encoding.UTF8.GetBytes(text));
        Assert.True(utf8.ExitCode == 0, utf8.Stderr);
        Assert.Equal(5, utf8.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain("[101,100,102]", utf8.Stdout);

        var bytes = Gb18030.GetBytes(text);
        var refused = CliProcess.Run(["tokenize", "--model", model], stdinBytes: bytes);
        AssertOneError(refused, $"<stdin>:1: not valid UTF-8 (byte 0xBD at column 1); {Utf8Hint}", null);
        Assert.Equal("", refused.Stdout);

        var decoded = CliProcess.Run(["tokenize", "--model", model, "--encoding", "gb18030"], stdinBytes: bytes);
        Assert.True(decoded.ExitCode == 0, decoded.Stderr);
        Assert.Equal(utf8.Stdout, decoded.Stdout);
    }

    [Fact]
    public void EncodeGivesTheSameVectorsForGb18030AndUtf16AsForUtf8()
    {
        string Encode(string input, string output, params string[] extra)
        {
            var result = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output, .. extra]);
            Assert.True(result.ExitCode == 0, result.Stderr);
            return output;
        }
        var reference = File.ReadAllBytes(Encode(Path.Combine(EncodingsDir, "zh.utf8.txt"), Path.Combine(dir, "utf8.npy")));

        var gb18030Input = Path.Combine(EncodingsDir, "zh.gb18030.txt");
        var refusedOutput = Path.Combine(dir, "refused.npy");
        AssertOneError(CliProcess.Run(["encode", "--model", model, "--input", gb18030Input, "--output", refusedOutput]),
            $"{gb18030Input}:1: not valid UTF-8 (byte 0xBD at column 1); {Utf8Hint}", refusedOutput);

        Assert.Equal(reference, File.ReadAllBytes(Encode(gb18030Input, Path.Combine(dir, "gb18030.npy"), "--encoding", "gb18030")));
        Assert.Equal(reference, File.ReadAllBytes(Encode(Path.Combine(EncodingsDir, "zh.utf16.txt"), Path.Combine(dir, "utf16.npy"), "--encoding", "utf-16")));
        Assert.Equal(reference, File.ReadAllBytes(Encode(Path.Combine(EncodingsDir, "zh.utf8-bom.txt"), Path.Combine(dir, "bom.npy"))));
    }

    [Fact]
    public void EncodeRefusesABinaryFile()
    {
        var input = Path.Combine(dir, "weights.txt");
        File.Copy(Path.Combine(model, "model.safetensors"), input);
        var output = Path.Combine(dir, "out.npy");
        var result = CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output]);
        Assert.True(result.ExitCode == 1, result.Stderr);
        Assert.Matches($@"^llm-embedder: error: {System.Text.RegularExpressions.Regex.Escape(input)}:\d+: not valid UTF-8 \(", Assert.Single(result.StderrLines));
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void UnknownEncodingIsOneLine()
    {
        var input = Write("input.txt", "今天星期几\n", Encoding.UTF8);
        var output = Path.Combine(dir, "out.npy");
        AssertOneError(CliProcess.Run(["encode", "--model", model, "--input", input, "--output", output, "--encoding", "gb-18030"]),
            "--encoding 'gb-18030': unknown encoding (for example utf-8, gb18030, gbk, big5, utf-16, utf-16le, utf-16be)", output);
    }

    [Fact]
    public void EvalReadsAGb18030CorpusOnlyWithEncoding()
    {
        const string corpusText = "{\"title\": \"北京\", \"text\": \"北京是中国的首都。\"}\n{\"title\": \"长江\", \"text\": \"长江是中国最长的河流。\"}\n";
        const string evalText = "{\"query\": \"中国的首都是哪里\", \"pos_index\": [0]}\n";
        string[] Eval(string folder, string output, params string[] extra) =>
            ["eval", "--model", model, "--eval_data", Path.Combine(dir, folder, "eval.jsonl"), "--corpus", Path.Combine(dir, folder, "corpus.jsonl"),
             "--output_dir", output, "--no_cache", "--cutoffs", "1", "--hits", "2", .. extra];
        Write("utf8/eval.jsonl", evalText, Encoding.UTF8);
        Write("utf8/corpus.jsonl", corpusText, Encoding.UTF8);
        // --encoding applies to every file a command reads, so both are GB18030 here.
        Write("gb/eval.jsonl", evalText, Gb18030);
        var gbCorpus = Write("gb/corpus.jsonl", corpusText, Gb18030);

        var refusedOutput = Path.Combine(dir, "out-refused");
        AssertOneError(CliProcess.Run(Eval("gb", refusedOutput)),
            $"{gbCorpus}:1: not valid UTF-8 (byte 0xB1 at column 12); {Utf8Hint}", refusedOutput);

        var utf8 = CliProcess.Run(Eval("utf8", Path.Combine(dir, "out-utf8")));
        Assert.True(utf8.ExitCode == 0, utf8.Stderr);
        var gb = CliProcess.Run(Eval("gb", Path.Combine(dir, "out-gb"), "--encoding", "gb18030"));
        Assert.True(gb.ExitCode == 0, gb.Stderr);
        Assert.Equal(File.ReadAllText(Path.Combine(dir, "out-utf8", "results.jsonl")), File.ReadAllText(Path.Combine(dir, "out-gb", "results.jsonl")));
    }

    [Fact]
    public void MineRefusesAGb18030InputWithoutEncoding()
    {
        var input = Write("train.jsonl",
            "{\"query\": \"q\", \"pos\": [\"p\"], \"neg\": [\"n\"]}\n{\"query\": \"中国的首都是哪里\", \"pos\": [\"北京\"], \"neg\": [\"上海\"]}\n", Gb18030);
        var output = Path.Combine(dir, "mined.jsonl");
        AssertOneError(CliProcess.Run(["mine", "--model", model, "--input_file", input, "--output_file", output, "--no_cache"]),
            $"{input}:2: not valid UTF-8 (byte 0xD6 at column 12); {Utf8Hint}", output);

        var mined = CliProcess.Run(["mine", "--model", model, "--input_file", input, "--output_file", output, "--no_cache",
            "--encoding", "gb18030", "--range_for_sampling", "0-4", "--negative_number", "1"]);
        Assert.True(mined.ExitCode == 0, mined.Stderr);
        // The output is UTF-8 whatever the input was.
        Assert.Contains("中国的首都是哪里", File.ReadAllText(output, new UTF8Encoding(false, true)));
    }

    [Fact]
    public void TrainReadsGb18030TrainingDataWithEncoding()
    {
        // Refused without --encoding: TrainBadDataCliTests runs this fixture through its Data/Invalid cases.
        var data = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Data", "Invalid", "not_utf8_gb18030.jsonl");
        var output = Path.Combine(dir, "train-out");
        var result = CliProcess.Run([
            "train", "--query_encoder", model, "--output_dir", output, "--train_data", data, "--encoding", "gb18030",
            "--per_device_train_batch_size", "2", "--train_group_size", "2", "--max_steps", "1", "--dtype", "fp32", "--save_steps", "0",
        ]);
        Assert.True(result.ExitCode == 0, result.Stdout + result.Stderr);
        Assert.True(Directory.Exists(Path.Combine(output, "encoder")));
    }
}
