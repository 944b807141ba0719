using LlmEmbedder.Data;

namespace LlmEmbedder.Retrieval;

/// <summary>One evaluation query with the corpus rows judged relevant to it.</summary>
/// <param name="Id">The query's id as text: <c>query_id</c> / <c>_id</c>, or the 0-based row number when the eval file has none.</param>
/// <param name="IdIsNumber">The id was a JSON integer (or a row number), so results write it back as a number, as the reference does.</param>
/// <param name="Text">The query text without any instruction (instructions are added when encoding).</param>
/// <param name="RelevantCorpusIndices">Distinct corpus row indices judged relevant, in file order; empty for a query without positives.</param>
/// <param name="Answers">The optional <c>answers</c> list of the eval row (kept for answer-based metrics; unused by mrr/recall/ndcg).</param>
public sealed record RetrievalQuery(
    string Id,
    bool IdIsNumber,
    string Text,
    IReadOnlyList<int> RelevantCorpusIndices,
    IReadOnlyList<string>? Answers = null);

/// <summary>
/// Queries, a corpus of key texts, and which corpus rows answer which query: what evaluation and mining need,
/// from either input layout (<see cref="LoadFlagEmbedding"/>, <see cref="LoadBeir"/>; <see cref="Load"/> picks by path).
/// </summary>
/// <param name="CorpusTexts">Each corpus row rendered through the key template, in file order.</param>
/// <param name="CorpusIds">The corpus rows' own ids (BEIR <c>_id</c>); null when rows are identified by their 0-based row number (FlagEmbedding layout).</param>
public sealed partial record RetrievalDataset(
    IReadOnlyList<RetrievalQuery> Queries,
    IReadOnlyList<string> CorpusTexts,
    IReadOnlyList<string>? CorpusIds)
{
    public IReadOnlyList<string> QueryTexts => Queries.Select(q => q.Text).ToArray();

    public int QueriesWithoutPositives => Queries.Count(q => q.RelevantCorpusIndices.Count == 0);

    /// <summary>
    /// A folder is read as BEIR / C-MTEB (<paramref name="corpus"/> must then be null); a file as FlagEmbedding
    /// eval JSONL with <paramref name="corpus"/> as its corpus JSONL. Every file is read in <paramref name="encoding"/> (UTF-8 by default).
    /// </summary>
    public static RetrievalDataset Load(string evalData, string? corpus, string split = "test", string keyTemplate = KeyTemplate.Default,
        TextEncoding? encoding = null)
    {
        if (Directory.Exists(evalData))
        {
            if (corpus is not null)
                throw new EmbedderException($"{evalData}: a BEIR folder brings its own corpus.jsonl; do not also give a corpus ({corpus})");
            return LoadBeir(evalData, split, keyTemplate, encoding);
        }
        if (corpus is null)
            throw new EmbedderException($"{evalData}: an eval JSONL file needs a corpus JSONL file (or give a BEIR folder instead)");
        return LoadFlagEmbedding(evalData, corpus, keyTemplate, encoding);
    }
}
