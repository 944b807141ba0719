using System.Text.Json.Nodes;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Tokenization;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace LlmEmbedder.Modeling;

/// <summary>
/// A BERT reranker: Hugging Face's BertForSequenceClassification with one label, the kind of model FlagEmbedding's
/// reranker and sentence-transformers' CrossEncoder save. The score of (query, passage) is the classifier's logit on
/// the pooler output of [CLS] query [SEP] passage [SEP] (token types 0 then 1), truncated longest-first to
/// <see cref="MaxLength"/> tokens. Owns the model's tensors.
/// </summary>
public sealed class CrossEncoder : IDisposable
{
    private readonly SequenceClassifier model;

    public BertTokenizer Tokenizer { get; }

    /// <summary>Tokens per pair, special tokens included.</summary>
    public int MaxLength { get; }

    /// <summary>
    /// The activation a sentence-transformers CrossEncoder folder names for its scores ("torch.nn.modules.activation.Sigmoid",
    /// ...), or null when the folder names none. Scores are raw logits whatever it says; the caller may apply a sigmoid.
    /// </summary>
    public string? DeclaredActivation { get; }

    private CrossEncoder(SequenceClassifier model, BertTokenizer tokenizer, int maxLength, string? declaredActivation)
    {
        this.model = model;
        Tokenizer = tokenizer;
        MaxLength = maxLength;
        DeclaredActivation = declaredActivation;
    }

    /// <summary>True when the folder's config.json declares a sequence-classification architecture (a reranker, not an embedder).</summary>
    public static bool IsCrossEncoderFolder(string dir)
    {
        var configPath = Path.Combine(dir, "config.json");
        if (!File.Exists(configPath)) return false;
        return Architectures(JsonFile.ReadObject(configPath)).Any(a => a.EndsWith("ForSequenceClassification", StringComparison.Ordinal));
    }

    /// <summary>
    /// Loads a BertForSequenceClassification folder (Hugging Face's, or sentence-transformers' CrossEncoder, which is
    /// the same files): config.json, the weights ("bert.*" with the pooler, "classifier.weight"/"classifier.bias") and
    /// the tokenizer. <paramref name="maxLength"/> defaults to the tokenizer's model_max_length, at most the model's positions.
    /// </summary>
    public static CrossEncoder Load(string dir, int? maxLength = null)
    {
        if (!Directory.Exists(dir)) throw new EmbedderException($"{dir}: model folder not found");
        var configPath = Path.Combine(dir, "config.json");
        var config = BertConfig.Load(configPath);
        var json = JsonFile.ReadObject(configPath);
        if (!Architectures(json).Contains("BertForSequenceClassification"))
            throw new EmbedderException($"{configPath}: architectures [{string.Join(", ", Architectures(json))}] is not BertForSequenceClassification " +
                "(a cross-encoder / reranker folder is expected)");
        int labels = LabelCount(json, configPath);
        if (labels != 1)
            throw new EmbedderException($"{configPath}: the model has {labels} labels; scoring needs a reranker with one relevance logit (num_labels 1)");

        var tokenizer = BertTokenizer.FromDirectory(dir);
        int length = maxLength ?? Math.Min(tokenizer.ModelMaxLength, config.MaxPositionEmbeddings);
        if (length < BertTokenizer.PairSpecialTokens + 1 || length > config.MaxPositionEmbeddings)
            throw new EmbedderException($"max length {length}: a pair needs {BertTokenizer.PairSpecialTokens + 1} to {config.MaxPositionEmbeddings} tokens (the model's max_position_embeddings)");

        var model = new SequenceClassifier(config, labels);
        try
        {
            StateDictLoader.LoadFolderInto(model, dir);
            model.eval();
            return new CrossEncoder(model, tokenizer, length, DeclaredActivationOf(json));
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Logits [batch] of one tokenized batch of pairs.</summary>
    public Tensor Forward(TokenBatch batch)
    {
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        var ids = tensor(batch.InputIds, shape);
        var mask = tensor(batch.AttentionMask, shape);
        var types = batch.TokenTypeIds is null ? null : tensor(batch.TokenTypeIds, shape);
        return model.call(ids, mask, types ?? zeros_like(ids)).select(1, 0);
    }

    /// <summary>
    /// The score of every (first, second) pair, in input order: the raw logit, or its sigmoid (FlagEmbedding's
    /// normalize=True). Pairs are batched by length (less padding), each batch in its own dispose scope.
    /// </summary>
    public float[] Score(IReadOnlyList<(string First, string Second)> pairs, int batchSize = 32, bool sigmoid = false, IProgress<int>? progress = null)
    {
        if (batchSize < 1) throw new EmbedderException($"batch size must be positive, got {batchSize}");
        var order = Enumerable.Range(0, pairs.Count).OrderByDescending(i => pairs[i].First.Length + pairs[i].Second.Length).ToArray();
        var scores = new float[pairs.Count];
        using (inference_mode())
        {
            for (int start = 0; start < order.Length; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var rows = order.Skip(start).Take(batchSize).ToArray();
                var logits = Forward(Tokenizer.EncodePairBatch(rows.Select(i => pairs[i]).ToList(), MaxLength));
                var values = (sigmoid ? logits.sigmoid() : logits).to(ScalarType.Float32).data<float>().ToArray();
                for (int r = 0; r < rows.Length; r++) scores[rows[r]] = values[r];
                progress?.Report(Math.Min(start + batchSize, order.Length));
            }
        }
        return scores;
    }

    public void Dispose() => model.Dispose();

    private static IEnumerable<string> Architectures(JsonObject config) =>
        config["architectures"] is JsonArray list ? list.Select(a => a?.GetValue<string>()).OfType<string>() : [];

    /// <summary>num_labels when written, else the size of id2label, else Hugging Face's default of 2.</summary>
    private static int LabelCount(JsonObject config, string path)
    {
        try
        {
            return config["num_labels"]?.GetValue<int>() ?? (config["id2label"] as JsonObject)?.Count ?? 2;
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new EmbedderException($"{path}: num_labels must be a whole number");
        }
    }

    /// <summary>sentence-transformers' activation: "sentence_transformers": {"activation_fn"} (v4), or the older "sbert_ce_default_activation_function".</summary>
    private static string? DeclaredActivationOf(JsonObject config) =>
        (config["sentence_transformers"] as JsonObject)?["activation_fn"]?.GetValue<string>()
        ?? config["sbert_ce_default_activation_function"]?.GetValue<string>();

    /// <summary>The module whose names are BertForSequenceClassification's checkpoint keys: "bert.*" and "classifier.*".</summary>
    private sealed class SequenceClassifier : Module<Tensor, Tensor, Tensor, Tensor>
    {
        private readonly BertModel bert;
        private readonly Linear classifier;

        public SequenceClassifier(BertConfig config, int labels) : base(nameof(SequenceClassifier))
        {
            bert = new BertModel(config, withPooler: true);
            classifier = Linear(config.HiddenSize, labels);
            RegisterComponents();
        }

        /// <summary>Logits [batch, labels]; the classifier's dropout is a no-op at inference, so it is left out.</summary>
        public override Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds) =>
            classifier.call(bert.Pool(bert.Forward(inputIds, attentionMask, tokenTypeIds)));
    }
}
