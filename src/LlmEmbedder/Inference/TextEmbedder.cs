using LlmEmbedder.Checkpoints;
using LlmEmbedder.Checkpoints.Hub;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Inference;

/// <summary>
/// A trained model, ready to embed text from an application: loaded from any model folder or hub id with its
/// encoder spec, so queries and keys get the pooling, dense pooler, normalisation, instructions and max lengths the
/// model was trained with. Thread-safe: concurrent calls are merged into batches (<see cref="TextEmbedderOptions"/>)
/// by one worker that owns the model.
/// </summary>
/// <example><code>
/// using var embedder = TextEmbedder.Load("outputs/llm-embedder-default");
/// float[][] queries = await embedder.EmbedQueriesAsync(["如何办理护照？"], task: "qa");
/// float[][] passages = await embedder.EmbedKeysAsync(passageTexts, task: "qa");
/// </code></example>
public sealed class TextEmbedder : IDisposable
{
    private readonly IEmbeddingModel queryModel;
    private readonly IEmbeddingModel keyModel;
    private readonly bool ownsModels;
    private readonly DynamicBatcher batcher;

    /// <summary>Loads <paramref name="modelOrHubId"/>: an encoder folder, a training output_dir or checkpoint-N, or a hub id.</summary>
    public static TextEmbedder Load(string modelOrHubId, TextEmbedderOptions? options = null)
    {
        options = (options ?? new TextEmbedderOptions()).Validated();
        var folder = ModelFolder.Open(ModelLocator.Resolve(modelOrHubId));
        var spec = folder.Override(options.Overrides, out var changes);
        return new TextEmbedder(new EncoderRequest(folder, spec, changes, options.Backend), ModelName(modelOrHubId), options);
    }

    /// <summary>Loads the side models of <paramref name="request"/> (one when tied).</summary>
    public TextEmbedder(EncoderRequest request, string modelId, TextEmbedderOptions? options = null)
        : this(LoadSides(request), modelId, options, ownsModels: true)
    {
        Request = request;
    }

    /// <summary>Embeds with models already loaded (the same one for both sides when tied); they stay the caller's.</summary>
    public TextEmbedder(IEmbeddingModel queryModel, IEmbeddingModel keyModel, string modelId, TextEmbedderOptions? options = null)
        : this((queryModel, keyModel), modelId, options, ownsModels: false)
    {
    }

    private TextEmbedder((IEmbeddingModel Query, IEmbeddingModel Key) models, string modelId, TextEmbedderOptions? options, bool ownsModels)
    {
        Options = (options ?? new TextEmbedderOptions()).Validated();
        (queryModel, keyModel, this.ownsModels) = (models.Query, models.Key, ownsModels);
        if (queryModel.Dimension != keyModel.Dimension)
            throw new EmbedderException($"the query encoder gives {queryModel.Dimension} dimensions but the key encoder {keyModel.Dimension}");
        ModelId = modelId;
        batcher = new DynamicBatcher(role => Model(role), Dimension, Options);
        batcher.BatchCompleted += statistics => BatchCompleted?.Invoke(statistics);
    }

    /// <summary>The name given at load: the folder's name, or the hub id.</summary>
    public string ModelId { get; }

    /// <summary>The folder and the spec after any overrides, when loaded from a folder.</summary>
    public EncoderRequest? Request { get; }

    /// <summary>How texts become vectors (the query side's; both sides share pooling, metric and instructions).</summary>
    public EncoderSpec Spec => queryModel.Spec;

    public int Dimension => queryModel.Dimension;

    public TextEmbedderOptions Options { get; }

    /// <summary>Calls waiting for the model.</summary>
    public int Waiting => batcher.Waiting;

    /// <summary>Each forward pass (raised on the worker thread: keep handlers short).</summary>
    public event Action<BatchStatistics>? BatchCompleted;

    public IEmbeddingModel Model(EmbeddingRole role) => role == EmbeddingRole.Query ? queryModel : keyModel;

    /// <summary>
    /// The texts with <paramref name="task"/>'s instruction for <paramref name="role"/>, tokenized. A text over the
    /// side's max length is cut, or with <paramref name="truncate"/> false (default: the options') refused.
    /// </summary>
    public TokenizedTexts Tokenize(IReadOnlyList<string> texts, EmbeddingRole role, string? task = null, bool? truncate = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var instruction = Spec.Instructions.For(task);
        var prefix = role == EmbeddingRole.Query ? instruction.Query : instruction.Key;
        var tokenizer = Model(role).Tokenizer;
        int maxLength = Spec.MaxLength(role);
        bool cut = truncate ?? Options.Truncate;
        var rows = new int[texts.Count][];
        for (int i = 0; i < texts.Count; i++)
        {
            var text = prefix + (texts[i] ?? throw new ArgumentException($"text {i} is null", nameof(texts)));
            // One token past the limit is enough to know a text is too long, without tokenizing all of it.
            rows[i] = tokenizer.Encode(text, cut ? maxLength : maxLength + 1);
            if (rows[i].Length > maxLength)
                throw new InputTooLongException(i, tokenizer.EncodeWithoutSpecialTokens(text).Length + 2, maxLength);
        }
        return new TokenizedTexts(role, rows);
    }

    /// <summary>Embeds texts already tokenized by <see cref="Tokenize"/>.</summary>
    /// <exception cref="QueueFullException">Too many calls are waiting.</exception>
    public Task<Embeddings> EmbedAsync(TokenizedTexts texts, CancellationToken cancellationToken = default) =>
        batcher.Enqueue(texts, cancellationToken);

    public Task<Embeddings> EmbedAsync(IReadOnlyList<string> texts, EmbeddingRole role, string? task = null, CancellationToken cancellationToken = default) =>
        EmbedAsync(Tokenize(texts, role, task), cancellationToken);

    /// <summary>Query embeddings: the task's query instruction, the query max length, the query encoder.</summary>
    public async Task<float[][]> EmbedQueriesAsync(IReadOnlyList<string> texts, string? task = null, CancellationToken cancellationToken = default) =>
        (await EmbedAsync(texts, EmbeddingRole.Query, task, cancellationToken).ConfigureAwait(false)).ToArrays();

    /// <summary>Key (passage, document) embeddings: the task's key instruction, the key max length, the key encoder.</summary>
    public async Task<float[][]> EmbedKeysAsync(IReadOnlyList<string> texts, string? task = null, CancellationToken cancellationToken = default) =>
        (await EmbedAsync(texts, EmbeddingRole.Key, task, cancellationToken).ConfigureAwait(false)).ToArrays();

    /// <summary>Finishes the calls already queued, then releases the model.</summary>
    public void Dispose()
    {
        batcher.Dispose();
        if (!ownsModels) return;
        queryModel.Dispose();
        if (!ReferenceEquals(keyModel, queryModel)) keyModel.Dispose();
    }

    private static (IEmbeddingModel, IEmbeddingModel) LoadSides(EncoderRequest request)
    {
        var query = request.Load(EmbeddingRole.Query);
        if (request.Model.Tied) return (query, query);
        try
        {
            return (query, request.Load(EmbeddingRole.Key));
        }
        catch
        {
            query.Dispose();
            throw;
        }
    }

    /// <summary>What a model is called by default: its folder's name, or the hub id.</summary>
    public static string ModelName(string modelOrHubId) =>
        Directory.Exists(modelOrHubId) ? Path.GetFileName(Path.GetFullPath(modelOrHubId).TrimEnd(Path.DirectorySeparatorChar)) : modelOrHubId;
}
