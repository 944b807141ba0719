using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace LlmEmbedder.Tests.Checkpoints;

/// <summary>
/// A stand-in for BertModel with the Hugging Face parameter names (embeddings.*, encoder.layer.N.*) and no pooler,
/// built from TorchSharp Embedding/Linear/LayerNorm. Only its names and shapes matter to the loader; it has no forward.
/// </summary>
internal sealed class TinyBertLike : Module
{
    public const int Hidden = 8, Intermediate = 16, Vocab = 24, Positions = 16, Types = 2, Layers = 2;

    // Field names are the checkpoint names: TorchSharp's RegisterComponents names submodules after them.
    private readonly EmbeddingsBlock embeddings;
    private readonly EncoderBlock encoder;

    public TinyBertLike(int hidden = Hidden) : base(nameof(TinyBertLike))
    {
        embeddings = new EmbeddingsBlock(hidden);
        encoder = new EncoderBlock(hidden);
        RegisterComponents();
    }

    private sealed class EmbeddingsBlock : Module
    {
        private readonly Embedding word_embeddings, position_embeddings, token_type_embeddings;
        private readonly LayerNorm LayerNorm;

        public EmbeddingsBlock(int hidden) : base("embeddings")
        {
            word_embeddings = Embedding(Vocab, hidden);
            position_embeddings = Embedding(Positions, hidden);
            token_type_embeddings = Embedding(Types, hidden);
            LayerNorm = nn.LayerNorm(hidden);
            RegisterComponents();
        }
    }

    private sealed class EncoderBlock : Module
    {
        private readonly ModuleList<LayerBlock> layer;

        public EncoderBlock(int hidden) : base("encoder")
        {
            layer = ModuleList(Enumerable.Range(0, Layers).Select(_ => new LayerBlock(hidden)).ToArray());
            RegisterComponents();
        }
    }

    private sealed class LayerBlock : Module
    {
        private readonly AttentionBlock attention;
        private readonly DenseBlock intermediate, output;

        public LayerBlock(int hidden) : base("layer")
        {
            attention = new AttentionBlock(hidden);
            intermediate = new DenseBlock(hidden, Intermediate, withLayerNorm: false);
            output = new DenseBlock(Intermediate, hidden, withLayerNorm: true);
            RegisterComponents();
        }
    }

    private sealed class AttentionBlock : Module
    {
        private readonly SelfAttentionBlock self;
        private readonly DenseBlock output;

        public AttentionBlock(int hidden) : base("attention")
        {
            self = new SelfAttentionBlock(hidden);
            output = new DenseBlock(hidden, hidden, withLayerNorm: true);
            RegisterComponents();
        }
    }

    private sealed class SelfAttentionBlock : Module
    {
        private readonly Linear query, key, value;

        public SelfAttentionBlock(int hidden) : base("self")
        {
            query = Linear(hidden, hidden);
            key = Linear(hidden, hidden);
            value = Linear(hidden, hidden);
            RegisterComponents();
        }
    }

    private sealed class DenseBlock : Module
    {
        private readonly Linear dense;
        private readonly LayerNorm? LayerNorm;

        public DenseBlock(int inputs, int outputs, bool withLayerNorm) : base("dense")
        {
            dense = Linear(inputs, outputs);
            LayerNorm = withLayerNorm ? nn.LayerNorm(outputs) : null;
            RegisterComponents();
        }
    }
}
