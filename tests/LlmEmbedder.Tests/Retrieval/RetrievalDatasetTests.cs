using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Tests.Retrieval;

/// <summary>The fixture files under Retrieval/Fixtures, read by eye: what each loader must make of them.</summary>
public sealed class RetrievalDatasetTests
{
    private static string Fixtures(params string[] parts) =>
        Path.Combine([TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Retrieval", "Fixtures", .. parts]);

    [Fact]
    public void FlagEmbeddingLayout()
    {
        var dataset = RetrievalDataset.LoadFlagEmbedding(Fixtures("flagembedding", "eval.jsonl"), Fixtures("flagembedding", "corpus.jsonl"));

        // "{title} {text}" filled field by field; null renders empty (Python would write "None"), a number as its JSON text.
        Assert.Equal(new[] { "北京 北京是中国的首都。", "上海 上海是中国最大的城市。", " 长城位于中国北方。", " 今天星期五。", "Numbers 42" }, dataset.CorpusTexts);
        Assert.Null(dataset.CorpusIds);

        Assert.Equal(4, dataset.Queries.Count);
        var first = dataset.Queries[0];
        Assert.Equal(("0", true, "中国的首都是哪里"), (first.Id, first.IdIsNumber, first.Text));
        Assert.Equal(new[] { 0 }, first.RelevantCorpusIndices);
        Assert.Equal(new[] { "北京" }, first.Answers);

        var second = dataset.Queries[1];
        Assert.Equal(("q-big", false), (second.Id, second.IdIsNumber));
        Assert.Equal(new[] { 1, 0 }, second.RelevantCorpusIndices); // the repeated 1 counts once
        Assert.Null(second.Answers);

        Assert.Equal(("7", true), (dataset.Queries[2].Id, dataset.Queries[2].IdIsNumber));
        Assert.Empty(dataset.Queries[2].RelevantCorpusIndices);
        Assert.Equal(("3", true), (dataset.Queries[3].Id, dataset.Queries[3].IdIsNumber)); // no query_id: its row number
        Assert.Empty(dataset.Queries[3].RelevantCorpusIndices); // no pos_index at all
        Assert.Equal(2, dataset.QueriesWithoutPositives);
    }

    [Fact]
    public void CustomKeyTemplateWithEscapedBraces()
    {
        var dataset = RetrievalDataset.LoadFlagEmbedding(
            Fixtures("flagembedding", "eval.jsonl"), Fixtures("flagembedding", "corpus.jsonl"), "{{{text}}} / {title}");

        Assert.Equal("{北京是中国的首都。} / 北京", dataset.CorpusTexts[0]);
    }

    [Fact]
    public void BeirLayout()
    {
        var dataset = RetrievalDataset.LoadBeir(Fixtures("beir"));

        Assert.Equal(new[] { "d1", "d2", "d3", "4" }, dataset.CorpusIds);
        Assert.Equal(new[] { "北京 北京是中国的首都。", "上海 上海是中国最大的城市。", " 长城位于中国北方。", " 今天星期五。" }, dataset.CorpusTexts);

        // Only judged queries, in queries.jsonl order: q2 has no qrels line.
        Assert.Equal(new[] { "q1", "q3", "q4" }, dataset.Queries.Select(q => q.Id));
        Assert.All(dataset.Queries, q => Assert.False(q.IdIsNumber));
        Assert.Equal(new[] { 0 }, dataset.Queries[0].RelevantCorpusIndices);      // q1: d1 (score 2); "4" has score 0
        Assert.Equal(new[] { 1, 0 }, dataset.Queries[1].RelevantCorpusIndices);   // q3: d2 twice, d1
        Assert.Empty(dataset.Queries[2].RelevantCorpusIndices);                   // q4: only a 0 score
        Assert.Equal("最大的城市", dataset.Queries[1].Text);
    }

    [Fact]
    public void BeirSplitWithoutHeader()
    {
        var dataset = RetrievalDataset.LoadBeir(Fixtures("beir"), split: "dev");

        Assert.Equal(new[] { "q1" }, dataset.Queries.Select(q => q.Id));
        Assert.Equal(new[] { 0 }, dataset.Queries[0].RelevantCorpusIndices);
    }

    [Fact]
    public void LoadPicksTheLayoutFromThePath()
    {
        Assert.NotNull(RetrievalDataset.Load(Fixtures("beir"), corpus: null).CorpusIds);
        Assert.Null(RetrievalDataset.Load(Fixtures("flagembedding", "eval.jsonl"), Fixtures("flagembedding", "corpus.jsonl")).CorpusIds);

        var noCorpus = Assert.Throws<EmbedderException>(() => RetrievalDataset.Load(Fixtures("flagembedding", "eval.jsonl"), corpus: null));
        Assert.Contains("needs a corpus JSONL file", noCorpus.Message);
        var twoCorpora = Assert.Throws<EmbedderException>(() => RetrievalDataset.Load(Fixtures("beir"), Fixtures("flagembedding", "corpus.jsonl")));
        Assert.Contains("brings its own corpus.jsonl", twoCorpora.Message);
    }
}
