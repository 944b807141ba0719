using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace LlmEmbedder.Modeling;

/// <summary>
/// BERT as in Hugging Face's modeling_bert.py. Module names equal the checkpoint keys
/// ("encoder.layer.3.attention.self.query.weight"), so a state dict loads without a mapping table. Input: token ids
/// and attention mask [batch, seq] (and token type ids for sentence pairs); output: last_hidden_state
/// [batch, seq, hidden]. The pooler is built only on request: embedding models do not use it, cross-encoders do.
/// </summary>
public sealed class BertModel : Module<Tensor, Tensor, Tensor>
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertPooler? pooler;

    public BertConfig Config { get; }

    /// <summary>
    /// In training mode with grad enabled, recompute each BertLayer's activations in backward instead of keeping them
    /// (Hugging Face's gradient_checkpointing_enable()): less memory, about one more forward of compute. The embeddings
    /// are not checkpointed, as in Hugging Face.
    /// </summary>
    public bool GradientCheckpointing
    {
        get => encoder.GradientCheckpointing;
        set => encoder.GradientCheckpointing = value;
    }

    /// <param name="withPooler">Build Hugging Face's pooler ("pooler.dense"), which <see cref="Pool"/> applies.</param>
    public BertModel(BertConfig config, bool withPooler = false) : base(nameof(BertModel))
    {
        Config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        register_module("embeddings", embeddings);
        register_module("encoder", encoder);
        if (withPooler)
        {
            pooler = new BertPooler(config);
            register_module("pooler", pooler);
        }
    }

    /// <summary>Initialises weights as Hugging Face does for a fresh model: normal(0, initializer_range), LayerNorm 1/0, zero biases.</summary>
    public void InitializeRandomWeights(Generator? generator = null)
    {
        using var _ = no_grad();
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith("LayerNorm.weight", StringComparison.Ordinal)) parameter.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) parameter.zero_();
            else parameter.normal_(0.0, Config.InitializerRange, generator);
        }
        // Hugging Face keeps the padding token's embedding at zero.
        named_parameters().Single(p => p.name == "embeddings.word_embeddings.weight").parameter[Config.PadTokenId].zero_();
    }

    /// <summary>Single segments: token type 0 everywhere.</summary>
    public override Tensor forward(Tensor inputIds, Tensor attentionMask) => Forward(inputIds, attentionMask, tokenTypeIds: null);

    /// <param name="tokenTypeIds">[batch, seq] segment ids (0 for the first text of a pair, 1 for the second), or null for all 0.</param>
    public Tensor Forward(Tensor inputIds, Tensor attentionMask, Tensor? tokenTypeIds)
    {
        var hidden = embeddings.call(inputIds, tokenTypeIds ?? zeros(1, inputIds.shape[1], dtype: ScalarType.Int64, device: inputIds.device));
        // Additive mask [batch, 1, 1, seq]: 0 where attended, the dtype's minimum where padded (as Hugging Face).
        var additiveMask = (1.0 - attentionMask.to(hidden.dtype)).mul(finfo(hidden.dtype).min).unsqueeze(1).unsqueeze(1);
        return encoder.call(hidden, additiveMask);
    }

    /// <summary>Hugging Face's pooler output, tanh(dense(first token)) [batch, hidden]; needs a model built with the pooler.</summary>
    public Tensor Pool(Tensor lastHiddenState) =>
        (pooler ?? throw new InvalidOperationException("this BertModel was built without the pooler")).call(lastHiddenState);
}

internal sealed class BertPooler : Module<Tensor, Tensor>
{
    private readonly Linear dense;

    public BertPooler(BertConfig config) : base(nameof(BertPooler))
    {
        dense = Linear(config.HiddenSize, config.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor lastHiddenState) => dense.call(lastHiddenState.select(1, 0)).tanh();
}

internal sealed class BertEmbeddings : Module<Tensor, Tensor, Tensor>
{
    private readonly Embedding word_embeddings;
    private readonly Embedding position_embeddings;
    private readonly Embedding token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertEmbeddings(BertConfig config) : base(nameof(BertEmbeddings))
    {
        word_embeddings = Embedding(config.VocabSize, config.HiddenSize, padding_idx: config.PadTokenId);
        position_embeddings = Embedding(config.MaxPositionEmbeddings, config.HiddenSize);
        token_type_embeddings = Embedding(config.TypeVocabSize, config.HiddenSize);
        LayerNorm = nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        dropout = Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    /// <param name="tokenTypes">[batch, seq], or [1, seq] for the same segment ids in every row.</param>
    public override Tensor forward(Tensor inputIds, Tensor tokenTypes)
    {
        long sequenceLength = inputIds.shape[1];
        var positions = arange(sequenceLength, dtype: ScalarType.Int64, device: inputIds.device).unsqueeze(0);
        var summed = word_embeddings.call(inputIds) + position_embeddings.call(positions) + token_type_embeddings.call(tokenTypes);
        return dropout.call(LayerNorm.call(summed));
    }
}

internal sealed class BertEncoder : Module<Tensor, Tensor, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    public bool GradientCheckpointing { get; set; }

    public BertEncoder(BertConfig config) : base(nameof(BertEncoder))
    {
        layer = new ModuleList<BertLayer>(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new BertLayer(config)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        var input = hidden;
        foreach (var bertLayer in layer)
        {
            // A layer's intermediates are released as soon as it returns: without a graph (inference, the first pass
            // of gradient caching) nothing else holds them, and with one the graph keeps what backward needs. Only the
            // layer's output lives on; the previous output is released once the next layer has read it.
            using var scope = NewDisposeScope();
            // Only in training mode, as Hugging Face (`self.gradient_checkpointing and self.training`).
            var output = GradientCheckpointing && training
                ? ActivationCheckpoint.Run((layerInput, mask) => bertLayer.call(layerInput, mask), hidden, additiveMask)
                : bertLayer.call(hidden, additiveMask);
            output.MoveToOuterDisposeScope();
            if (!ReferenceEquals(hidden, input)) hidden.Dispose();
            hidden = output;
        }
        return hidden;
    }
}

internal sealed class BertLayer : Module<Tensor, Tensor, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig config) : base(nameof(BertLayer))
    {
        attention = new BertAttention(config);
        intermediate = new BertIntermediate(config);
        output = new BertResidualOutput(config.IntermediateSize, config.HiddenSize, config);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        var attended = attention.call(hidden, additiveMask);
        return output.call(intermediate.call(attended), attended);
    }
}

internal sealed class BertAttention : Module<Tensor, Tensor, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig config) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(config);
        output = new BertResidualOutput(config.HiddenSize, config.HiddenSize, config);
        register_module("self", self);
        register_module("output", output);
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask) => output.call(self.call(hidden, additiveMask), hidden);
}

internal sealed class BertSelfAttention : Module<Tensor, Tensor, Tensor>
{
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly int heads;
    private readonly double attentionDropout;

    public BertSelfAttention(BertConfig config) : base(nameof(BertSelfAttention))
    {
        query = Linear(config.HiddenSize, config.HiddenSize);
        key = Linear(config.HiddenSize, config.HiddenSize);
        value = Linear(config.HiddenSize, config.HiddenSize);
        heads = config.NumAttentionHeads;
        attentionDropout = config.AttentionProbsDropoutProb;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor additiveMask)
    {
        long batch = hidden.shape[0], sequence = hidden.shape[1], width = hidden.shape[2];
        Tensor Heads(Linear projection) => projection.call(hidden).view(batch, sequence, heads, width / heads).transpose(1, 2);
        // softmax(QKᵀ/√d + mask)·V, fused by libtorch; same arithmetic as Hugging Face's eager attention.
        var context = F.scaled_dot_product_attention(Heads(query), Heads(key), Heads(value), additiveMask.to(hidden.dtype),
            p: training ? attentionDropout : 0.0);
        return context.transpose(1, 2).reshape(batch, sequence, width);
    }
}

/// <summary>dense → dropout → LayerNorm(x + residual): the "output" block after attention and after the feed-forward.</summary>
internal sealed class BertResidualOutput : Module<Tensor, Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;
    private readonly Dropout dropout;

    public BertResidualOutput(int inputSize, int hiddenSize, BertConfig config) : base(nameof(BertResidualOutput))
    {
        dense = Linear(inputSize, hiddenSize);
        LayerNorm = nn.LayerNorm(hiddenSize, config.LayerNormEps);
        dropout = Dropout(config.HiddenDropoutProb);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input, Tensor residual) => LayerNorm.call(dropout.call(dense.call(input)) + residual);
}

internal sealed class BertIntermediate : Module<Tensor, Tensor>
{
    private readonly Linear dense;
    private readonly string activation;

    public BertIntermediate(BertConfig config) : base(nameof(BertIntermediate))
    {
        dense = Linear(config.HiddenSize, config.IntermediateSize);
        activation = config.HiddenAct;
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        var projected = dense.call(hidden);
        return activation switch
        {
            "relu" => F.relu(projected),
            "gelu_new" => F.gelu(projected, TorchSharp.Modules.GELU.Approximate.tanh),
            _ => F.gelu(projected),
        };
    }
}
