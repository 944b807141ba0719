using System.Text.Encodings.Web;
using System.Text.Json;

namespace LlmEmbedder.Retrieval;

/// <summary>Writes search results and metrics, each file whole or not at all.</summary>
public static class RetrievalResults
{
    private static readonly JsonWriterOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonWriterOptions Indented = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = true };

    /// <summary>
    /// One line per query, in dataset order: <c>{"query_id": ..., "pred": [...], "score": [...]}</c>, as FlagEmbedding's
    /// RetrievalMetric._save_result writes it. <c>pred</c> holds corpus row numbers for the FlagEmbedding layout (as the
    /// reference) and corpus <c>_id</c> strings for BEIR. <c>query_id</c> is a number when the source id was one.
    /// A non-finite score is written as null (JSON has no NaN).
    /// </summary>
    public static void WriteJsonl(string path, RetrievalDataset dataset, SearchResult result)
    {
        if (result.QueryCount != dataset.Queries.Count)
            throw new ArgumentException($"{result.QueryCount} ranked lists for {dataset.Queries.Count} queries", nameof(result));
        FileUtil.WriteAtomic(path, stream =>
        {
            using var writer = new Utf8JsonWriter(stream, Compact);
            for (int q = 0; q < dataset.Queries.Count; q++)
            {
                var query = dataset.Queries[q];
                writer.WriteStartObject();
                writer.WritePropertyName("query_id");
                if (query.IdIsNumber) writer.WriteRawValue(query.Id); else writer.WriteStringValue(query.Id);
                writer.WriteStartArray("pred");
                foreach (var index in result.Indices[q])
                {
                    if (dataset.CorpusIds is { } ids) writer.WriteStringValue(ids[index]);
                    else writer.WriteNumberValue(index);
                }
                writer.WriteEndArray();
                writer.WriteStartArray("score");
                foreach (var score in result.Scores[q])
                {
                    if (float.IsFinite(score)) writer.WriteNumberValue(score); else writer.WriteNullValue();
                }
                writer.WriteEndArray();
                writer.WriteEndObject();
                writer.Flush();
                stream.Write("\n"u8);
                writer.Reset(); // the next line is a new top-level value
            }
        });
    }

    /// <summary>
    /// <c>{"mrr@1": ..., ..., "queries_evaluated": n, "queries_without_positives": m}</c>: the metric keys first, in
    /// <see cref="RetrievalMetrics.KeyOrder"/>, then the two counts.
    /// </summary>
    public static void WriteMetrics(string path, RetrievalMetricsResult metrics)
    {
        FileUtil.WriteAtomic(path, stream =>
        {
            using var writer = new Utf8JsonWriter(stream, Indented);
            writer.WriteStartObject();
            foreach (var (key, value) in metrics.Values) writer.WriteNumber(key, value);
            writer.WriteNumber("queries_evaluated", metrics.QueriesEvaluated);
            writer.WriteNumber("queries_without_positives", metrics.QueriesWithoutPositives);
            writer.WriteEndObject();
            writer.Flush();
            stream.Write("\n"u8);
        });
    }
}
