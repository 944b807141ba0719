using System.Globalization;
using System.Text.Json;
using LlmEmbedder.Data;

namespace LlmEmbedder.Retrieval;

public sealed partial record RetrievalDataset
{
    /// <summary>
    /// FlagEmbedding's layout (run_dense.py <c>--eval_data</c> / <c>--corpus</c>): eval rows
    /// <c>{"query": str, "pos_index": [corpus row numbers], "query_id"?: str|int, "answers"?: [str]}</c> and corpus rows
    /// whose fields fill <paramref name="keyTemplate"/>.
    /// </summary>
    /// <remarks>
    /// A row without <c>pos_index</c> (or with an empty one) is a query without positives: kept, and skipped by the
    /// metrics, which count it. Repeated entries of <c>pos_index</c> count once. Without <c>query_id</c> a query is
    /// identified by its 0-based row number, as in the reference. Errors name file:line: a malformed line, a missing
    /// <c>query</c>, a <c>pos_index</c> outside the corpus, a repeated <c>query_id</c>, a corpus row lacking a field the
    /// template needs, an empty corpus or eval file.
    /// </remarks>
    public static RetrievalDataset LoadFlagEmbedding(string evalDataPath, string corpusPath, string keyTemplate = KeyTemplate.Default,
        TextEncoding? encoding = null)
    {
        var template = KeyTemplate.Parse(keyTemplate);
        foreach (var path in new[] { evalDataPath, corpusPath })
            if (!File.Exists(path)) throw new EmbedderException($"{path}: file not found");

        var corpusTexts = new List<string>();
        JsonlFile.ForEachObject(corpusPath, (line, row) => corpusTexts.Add(template.Render(row, corpusPath, line)), encoding);
        if (corpusTexts.Count == 0) throw new EmbedderException($"{corpusPath}: the corpus is empty (no rows)");

        var queries = new List<RetrievalQuery>();
        var lineOfId = new Dictionary<string, long>();
        JsonlFile.ForEachObject(evalDataPath, (line, row) =>
        {
            var text = JsonlFile.RequiredString(row, "query", evalDataPath, line);
            var (id, idIsNumber) = row.TryGetProperty("query_id", out var idValue) && idValue.ValueKind != JsonValueKind.Null
                ? JsonlFile.Identifier(idValue, "query_id", evalDataPath, line)
                : ((line - 1).ToString(CultureInfo.InvariantCulture), true);
            if (!lineOfId.TryAdd(id, line))
                throw EmbedderException.AtLine(evalDataPath, line, $"query_id {id} repeats the query at line {lineOfId[id]}");
            var relevant = ReadPosIndex(row, corpusTexts.Count, evalDataPath, line, corpusPath);
            var answers = ReadAnswers(row, evalDataPath, line);
            queries.Add(new RetrievalQuery(id, idIsNumber, text, relevant, answers));
        }, encoding);
        if (queries.Count == 0) throw new EmbedderException($"{evalDataPath}: no queries (the file is empty)");
        return new RetrievalDataset(queries, corpusTexts, CorpusIds: null);
    }

    private static int[] ReadPosIndex(JsonElement row, int corpusRows, string path, long line, string corpusPath)
    {
        if (!row.TryGetProperty("pos_index", out var posIndex) || posIndex.ValueKind == JsonValueKind.Null) return [];
        if (posIndex.ValueKind != JsonValueKind.Array)
            throw EmbedderException.AtLine(path, line, $"\"pos_index\" must be a list of corpus row numbers, found {JsonlFile.Describe(posIndex)}");
        var relevant = new List<int>();
        foreach (var entry in posIndex.EnumerateArray())
        {
            if (entry.ValueKind != JsonValueKind.Number || !entry.TryGetInt64(out var index))
                throw EmbedderException.AtLine(path, line, $"\"pos_index\" must hold corpus row numbers (integers), found {entry.GetRawText()}");
            if (index < 0 || index >= corpusRows)
                throw EmbedderException.AtLine(path, line, $"pos_index {index} is out of range: the corpus {corpusPath} has {corpusRows} rows (0..{corpusRows - 1})");
            if (!relevant.Contains((int)index)) relevant.Add((int)index);
        }
        return [.. relevant];
    }

    private static string[]? ReadAnswers(JsonElement row, string path, long line)
    {
        if (!row.TryGetProperty("answers", out var answers) || answers.ValueKind == JsonValueKind.Null) return null;
        return JsonlFile.StringList(answers, "answers", path, line);
    }
}
