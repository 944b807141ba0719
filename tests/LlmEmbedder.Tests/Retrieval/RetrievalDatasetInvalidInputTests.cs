using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>Every folder under Retrieval/Invalid is a bad input paired with the one-line error it must give (see its README).</summary>
public sealed class RetrievalDatasetInvalidInputTests
{
    private static readonly string InvalidRoot = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Retrieval", "Invalid");

    public static TheoryData<string> Cases()
    {
        var cases = new TheoryData<string>();
        foreach (var folder in Directory.GetDirectories(InvalidRoot).Order(StringComparer.Ordinal))
            cases.Add(Path.GetFileName(folder));
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void GivesItsExpectedError(string caseName)
    {
        var folder = Path.Combine(InvalidRoot, caseName);
        var expected = File.ReadAllText(Path.Combine(folder, "expected-error.txt")).TrimEnd('\n').Replace("{dir}", folder);
        var templateFile = Path.Combine(folder, "key_template.txt");
        var template = File.Exists(templateFile) ? File.ReadAllText(templateFile).TrimEnd('\n') : KeyTemplate.Default;
        bool flagEmbedding = File.Exists(Path.Combine(folder, "eval.jsonl"));

        var error = Assert.Throws<EmbedderException>(() => flagEmbedding
            ? RetrievalDataset.LoadFlagEmbedding(Path.Combine(folder, "eval.jsonl"), Path.Combine(folder, "corpus.jsonl"), template)
            : RetrievalDataset.LoadBeir(folder, "test", template));

        if (expected.EndsWith("...", StringComparison.Ordinal))
            Assert.StartsWith(expected[..^3], error.Message);
        else
            Assert.Equal(expected, error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

}
