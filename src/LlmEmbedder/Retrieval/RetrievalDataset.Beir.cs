using System.Globalization;
using System.Text.Json;
using LlmEmbedder.Data;

namespace LlmEmbedder.Retrieval;

public sealed partial record RetrievalDataset
{
    /// <summary>
    /// The BEIR / C-MTEB layout: <c>corpus.jsonl</c> rows <c>{"_id", "title", "text"}</c>, <c>queries.jsonl</c> rows
    /// <c>{"_id", "text"}</c> and <c>qrels/&lt;split&gt;.tsv</c> lines <c>query-id TAB corpus-id TAB score</c> (the first
    /// line may be a header), a score above 0 meaning relevant.
    /// </summary>
    /// <remarks>
    /// As BEIR's own loader does, only the queries that the qrels judge are kept, in queries.jsonl order; a judged query
    /// whose scores are all 0 is kept without positives (the metrics skip and count it). Corpus rows are rendered with
    /// <paramref name="keyTemplate"/>; a missing <c>title</c> renders empty (C-MTEB corpora have none), any other field
    /// the template names is required. A qrels line naming an id absent from queries.jsonl or corpus.jsonl is an error
    /// at that line, as are repeated <c>_id</c>s.
    /// </remarks>
    public static RetrievalDataset LoadBeir(string folder, string split = "test", string keyTemplate = KeyTemplate.Default, TextEncoding? encoding = null)
    {
        var template = KeyTemplate.Parse(keyTemplate);
        if (!Directory.Exists(folder)) throw new EmbedderException($"{folder}: folder not found");
        var corpusPath = Path.Combine(folder, "corpus.jsonl");
        var queriesPath = Path.Combine(folder, "queries.jsonl");
        var qrelsPath = Path.Combine(folder, "qrels", split + ".tsv");
        if (!File.Exists(qrelsPath))
        {
            var splits = Directory.Exists(Path.Combine(folder, "qrels"))
                ? Directory.GetFiles(Path.Combine(folder, "qrels"), "*.tsv").Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal).ToArray()
                : [];
            throw new EmbedderException($"{qrelsPath}: file not found (splits present: {(splits.Length == 0 ? "none" : string.Join(", ", splits))})");
        }

        var optionalTitle = new HashSet<string> { "title" };
        var corpusIds = new List<string>();
        var corpusTexts = new List<string>();
        var corpusIndexOfId = new Dictionary<string, int>(StringComparer.Ordinal);
        ForEachRowWithId(corpusPath, "row", encoding, (id, line, row) =>
        {
            corpusIndexOfId[id] = corpusIds.Count;
            corpusIds.Add(id);
            corpusTexts.Add(template.Render(row, corpusPath, line, optionalTitle));
        });
        if (corpusIds.Count == 0) throw new EmbedderException($"{corpusPath}: the corpus is empty (no rows)");

        var queryOrder = new List<string>();
        var queryText = new Dictionary<string, string>(StringComparer.Ordinal);
        ForEachRowWithId(queriesPath, "query", encoding, (id, line, row) =>
        {
            queryOrder.Add(id);
            queryText[id] = JsonlFile.RequiredString(row, "text", queriesPath, line);
        });

        var relevantOfQuery = ReadQrels(qrelsPath, queryText, corpusIndexOfId, queriesPath, corpusPath, encoding);
        var queries = queryOrder
            .Where(relevantOfQuery.ContainsKey)
            .Select(id => new RetrievalQuery(id, IdIsNumber: false, queryText[id], relevantOfQuery[id]))
            .ToArray();
        return new RetrievalDataset(queries, corpusTexts, corpusIds);
    }

    /// <summary>
    /// Calls <paramref name="onRow"/> with the <c>_id</c>, line number and row of each row of a JSONL file; a missing
    /// or repeated <c>_id</c> is an error at its line (<paramref name="rowName"/> says what a row is).
    /// </summary>
    private static void ForEachRowWithId(string path, string rowName, TextEncoding? encoding, Action<string, long, JsonElement> onRow)
    {
        var lineOfId = new Dictionary<string, long>(StringComparer.Ordinal);
        JsonlFile.ForEachObject(path, (line, row) =>
        {
            var id = row.TryGetProperty("_id", out var value)
                ? JsonlFile.Identifier(value, "_id", path, line).Text
                : throw EmbedderException.AtLine(path, line, "no \"_id\" field");
            if (!lineOfId.TryAdd(id, line))
                throw EmbedderException.AtLine(path, line, $"_id '{id}' repeats the {rowName} at line {lineOfId[id]}");
            onRow(id, line, row);
        }, encoding);
    }

    /// <returns>For each judged query id, its relevant corpus indices (distinct, in file order; empty when every score is 0).</returns>
    private static Dictionary<string, List<int>> ReadQrels(
        string qrelsPath, Dictionary<string, string> queryText, Dictionary<string, int> corpusIndexOfId, string queriesPath, string corpusPath,
        TextEncoding? encoding)
    {
        var relevantOfQuery = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        long line = 0;
        foreach (var text in TextFile.ReadLines(qrelsPath, encoding))
        {
            line++;
            var fields = text.Split('\t');
            if (fields.Length != 3)
                throw EmbedderException.AtLine(qrelsPath, line, $"expected 3 tab-separated fields (query-id, corpus-id, score), found {fields.Length}");
            bool isNumber = double.TryParse(fields[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var score);
            if (!isNumber && line == 1) continue; // the header, e.g. "query-id\tcorpus-id\tscore"
            if (!isNumber)
                throw EmbedderException.AtLine(qrelsPath, line, $"score '{fields[2]}' is not a number");
            var (queryId, corpusId) = (fields[0], fields[1]);
            if (!queryText.ContainsKey(queryId))
                throw EmbedderException.AtLine(qrelsPath, line, $"query-id '{queryId}' is not in {queriesPath}");
            if (!corpusIndexOfId.TryGetValue(corpusId, out var corpusIndex))
                throw EmbedderException.AtLine(qrelsPath, line, $"corpus-id '{corpusId}' is not in {corpusPath}");
            if (!relevantOfQuery.TryGetValue(queryId, out var relevant))
                relevantOfQuery[queryId] = relevant = [];
            if (score > 0 && !relevant.Contains(corpusIndex)) relevant.Add(corpusIndex);
        }
        if (relevantOfQuery.Count == 0) throw new EmbedderException($"{qrelsPath}: no judgements (the file has no query-id/corpus-id lines)");
        return relevantOfQuery;
    }
}
