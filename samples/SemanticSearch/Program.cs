// Semantic search with a trained model: embed a corpus once, then answer each query read from stdin with the five
// closest passages.
// Usage: dotnet run -c Release --project samples/SemanticSearch -- [model] [corpus.jsonl] [--task qa]
using System.Diagnostics;
using System.Text.Json;
using LlmEmbedder;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;

var (model, corpusPath, task) = ("outputs/llm-embedder-default", "samples/eval/corpus.jsonl", "qa");
var positional = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--task" && i + 1 < args.Length) task = args[++i];
    else positional.Add(args[i]);
}
if (positional.Count > 0) model = positional[0];
if (positional.Count > 1) corpusPath = positional[1];

try
{
    // The model folder says how to embed: pooling, normalisation, max lengths, each task's instructions.
    using var embedder = TextEmbedder.Load(model);

    // Corpus rows are {"title": ..., "text": ...}; a passage is indexed as "title text", as `llm-embedder eval` does.
    var passages = File.ReadLines(corpusPath)
        .Where(line => line.Trim().Length > 0)
        .Select(line => JsonSerializer.Deserialize<Passage>(line, JsonSerializerOptions.Web)!)
        .Select(passage => $"{passage.Title} {passage.Text}")
        .ToList();
    var clock = Stopwatch.StartNew();
    Embeddings index = await embedder.EmbedAsync(passages, EmbeddingRole.Key, task);
    Console.Error.WriteLine($"indexed {passages.Count} passages ({index.Dimension} dimensions) in {clock.Elapsed.TotalSeconds:F1} s; " +
        "type a query (Ctrl-D to quit)");

    while (true)
    {
        if (!Console.IsInputRedirected) Console.Write("> ");
        var query = Console.ReadLine();
        if (query is null) break;
        if (query.Trim().Length == 0) continue;

        // Queries get the task's query instruction; keys got its key instruction.
        Embeddings queryVector = await embedder.EmbedAsync([query], EmbeddingRole.Query, task);
        // Vectors of a cosine model are normalised, so the inner product is the cosine.
        var hits = ExactSearch.Search(queryVector.Values, index.Values, index.Dimension, k: 5);
        for (int rank = 0; rank < hits.Indices[0].Length; rank++)
            Console.WriteLine($"{rank + 1}. {hits.Scores[0][rank]:F4}  {passages[hits.Indices[0][rank]]}");
        Console.WriteLine();
    }
    return 0;
}
catch (Exception error) when (error is EmbedderException or IOException or JsonException)
{
    Console.Error.WriteLine($"error: {error.Message}");
    return 1;
}

internal sealed record Passage(string Title, string Text);
