using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tests.Reference;
using LlmEmbedder.Tokenization;
using Tokenizers.DotNet;

namespace LlmEmbedder.Tests.Cli;

/// <summary>
/// `encode` and `tokenize` as a user runs them, against independent references: ONNX Runtime embeddings of the
/// original arctic-embed-xs graph, NumPy reading the .npy, Hugging Face tokenizers (Tokenizers.DotNet) for ids.
/// </summary>
public sealed class CliEncodeAndTokenizeTests : IDisposable
{
    private static readonly string[] Lines =
    [
        "what is the capital of France?",
        "Paris is the capital and most populous city of France.",
        "",
        "\tTabs, ÜMLAUTS and emoji 🙂 are fine",
        string.Join(" ", Enumerable.Repeat("a very long passage", 200)),
    ];

    private readonly string dir = TestPaths.NewTempDir("cli-encode");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void EncodeWritesNumpyMatrixEqualToOnnxRuntimeClsEmbeddingsInInputOrder()
    {
        var reference = PretrainedOnnxModels.ArcticXs;
        var input = Path.Combine(dir, "input.txt");
        File.WriteAllText(input, string.Join("\n", Lines) + "\n");
        var output = Path.Combine(dir, "embeddings.npy");

        var result = CliProcess.Run(["encode", "--model", reference.HuggingFaceDir, "--input", input, "--output", output, "--batch_size", "2"]);
        Assert.True(result.ExitCode == 0, result.Stderr);

        var numpy = JsonNode.Parse(ReferencePython.Run("read_npy.py", output))!;
        Assert.Equal("<f4", numpy["dtype"]!.GetValue<string>());
        Assert.Equal([Lines.Length, 384], numpy["shape"]!.AsArray().Select(d => d!.GetValue<int>()));
        Assert.False(numpy["fortran_order"]!.GetValue<bool>());
        var values = numpy["values"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();

        var expected = OnnxClsEmbeddings(reference, Lines);
        for (int i = 0; i < values.Length; i++)
            Assert.True(Math.Abs(values[i] - expected[i]) < 1e-4, $"row {i / 384}, dim {i % 384}: {values[i]} vs ONNX Runtime {expected[i]}");
    }

    [Fact]
    public void Bf16EncodeStaysWithinBf16RoundingOfOnnxRuntimeFp32()
    {
        var reference = PretrainedOnnxModels.ArcticXs;
        var input = Path.Combine(dir, "input.txt");
        File.WriteAllText(input, string.Join("\n", Lines) + "\n");
        var bf16 = Path.Combine(dir, "bf16.npy");
        var fp32 = Path.Combine(dir, "fp32.npy");

        var result = CliProcess.Run(["encode", "--model", reference.HuggingFaceDir, "--input", input, "--output", bf16, "--dtype", "bf16"]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(0, CliProcess.Run(["encode", "--model", reference.HuggingFaceDir, "--input", input, "--output", fp32]).ExitCode);

        var values = Npy.ReadFloat32(bf16).Values;
        var expected = OnnxClsEmbeddings(reference, Lines);
        for (int row = 0; row < Lines.Length; row++)
        {
            double cosine = Enumerable.Range(row * 384, 384).Sum(i => values[i] * expected[i]);
            Assert.True(cosine > 0.99, $"row {row}: cosine {cosine} with ONNX Runtime fp32");
        }
        // It really ran in bf16 (8-bit mantissa): the matrix is not the fp32 one.
        var fromFp32 = Npy.ReadFloat32(fp32).Values;
        Assert.True(values.Zip(fromFp32, (a, b) => Math.Abs(a - b)).Max() > 1e-4);
    }

    [Fact]
    public void JsonlInputGivesTheSameMatrixAsText()
    {
        var reference = PretrainedOnnxModels.ArcticXs;
        var text = Path.Combine(dir, "input.txt");
        var jsonl = Path.Combine(dir, "input.jsonl");
        File.WriteAllText(text, string.Join("\n", Lines));
        File.WriteAllLines(jsonl, Lines.Select(l => JsonSerializer.Serialize(new { id = 1, text = l })));
        var fromText = Path.Combine(dir, "a.npy");
        var fromJsonl = Path.Combine(dir, "b.npy");
        Assert.Equal(0, CliProcess.Run(["encode", "--model", reference.HuggingFaceDir, "--input", text, "--output", fromText]).ExitCode);
        Assert.Equal(0, CliProcess.Run(["encode", "--model", reference.HuggingFaceDir, "--input", jsonl, "--output", fromJsonl]).ExitCode);
        Assert.Equal(Npy.ReadFloat32(fromText).Values, Npy.ReadFloat32(fromJsonl).Values);
    }

    [Fact]
    public void TokenizeMatchesHuggingFaceTokenizersLineByLine()
    {
        var reference = PretrainedOnnxModels.ArcticXs;
        string[] lines = ["Hello, World!", "今天星期几？", "naïve café [CLS] x", "\u200bzero\u200dwidth", "x"];
        var result = CliProcess.Run(["tokenize", "--model", reference.HuggingFaceDir], stdin: string.Join("\n", lines) + "\n");
        Assert.True(result.ExitCode == 0, result.Stderr);
        var produced = result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => JsonSerializer.Deserialize<int[]>(l)!).ToArray();

        using var huggingFace = new Tokenizer(reference.TokenizerJsonPath);
        Assert.Equal(lines.Length, produced.Length);
        for (int i = 0; i < lines.Length; i++)
            Assert.Equal(huggingFace.Encode(lines[i]).Select(id => (int)id), produced[i]);
    }

    [Fact]
    public void TokenizeTruncatesToMaxLengthCountingClsAndSep()
    {
        var reference = PretrainedOnnxModels.ArcticXs;
        var result = CliProcess.Run(["tokenize", "--model", reference.HuggingFaceDir, "--max_length", "4"], stdin: "one two three four five\n");
        var ids = JsonSerializer.Deserialize<int[]>(result.Stdout.Trim())!;
        var tokenizer = BertTokenizer.FromDirectory(reference.HuggingFaceDir);
        Assert.Equal([tokenizer.ClsId, tokenizer.TokenToId("one")!.Value, tokenizer.TokenToId("two")!.Value, tokenizer.SepId], ids);
    }

    /// <summary>ONNX Runtime last_hidden_state of each text alone (no padding), CLS row, L2-normalised in double.</summary>
    private static double[] OnnxClsEmbeddings(OnnxReferenceModel reference, IReadOnlyList<string> texts)
    {
        var tokenizer = BertTokenizer.FromDirectory(reference.HuggingFaceDir);
        var result = new List<double>();
        foreach (var text in texts)
        {
            var ids = tokenizer.Encode(text, 512).Select(i => (long)i).ToArray();
            var hidden = reference.RunLastHiddenState(ids, ids.Select(_ => 1L).ToArray(), new long[ids.Length], 1, ids.Length);
            var cls = hidden.Take(384).Select(v => (double)v).ToArray();
            double norm = Math.Sqrt(cls.Sum(v => v * v));
            result.AddRange(cls.Select(v => v / norm));
        }
        return [.. result];
    }
}
