using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using static TorchSharp.torch;

namespace LlmEmbedder.Training;

/// <summary>
/// Gradient caching (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup";
/// sentence-transformers' CachedMultipleNegativesRankingLoss and its mini_batch_size). The in-batch loss needs every
/// embedding of the batch at once, but only the embeddings, not the activations behind them. So:
/// <list type="number">
/// <item>embed every query and key without a graph, in chunks of at most <c>chunkSize</c> texts, noting the
/// generator's state before each chunk;</item>
/// <item>compute the loss from those embeddings (cross-device gathering and distillation included: it is
/// <see cref="DenseRetriever.Loss(RetrievalBatch, Tensor, Tensor)"/>) and its gradient with respect to each embedding;</item>
/// <item>embed each chunk again, with its graph and the generator replayed (the same dropout masks), and backpropagate
/// that chunk's cached gradient into the encoder.</item>
/// </list>
/// The parameters' gradients are those of the loss computed in step 2, as exact as a single pass over the batch with
/// those masks; peak memory holds one chunk's activations, for about one extra forward of compute. Texts are sorted
/// by length before they are cut into chunks, so a chunk pads only to its own longest text.
/// </summary>
public static class GradientCache
{
    /// <summary>Rows of <paramref name="texts"/> in chunks of at most <paramref name="chunkSize"/>, longest first.</summary>
    public static IReadOnlyList<int[]> ChunksByLength(TokenBatch texts, int chunkSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        var lengths = Enumerable.Range(0, texts.BatchSize).Select(texts.RowLength).ToArray();
        return Enumerable.Range(0, texts.BatchSize).OrderByDescending(row => lengths[row]).Chunk(chunkSize).ToList();
    }

    /// <summary>
    /// <see cref="DenseRetriever.ForwardBackward"/> in chunks of <paramref name="chunkSize"/> texts. Forward is the
    /// first pass with the loss and its gradient; backward is the second pass, its forwards included.
    /// </summary>
    public static MicroBatchPass ForwardBackward(DenseRetriever retriever, RetrievalBatch batch, int chunkSize, int lossDivisor)
    {
        using var scope = NewDisposeScope();
        var clock = Stopwatch.StartNew();
        var queries = new Side(batch.Queries, retriever.EmbedQueries, chunkSize);
        var keys = new Side(batch.Keys, retriever.EmbedKeys, chunkSize);
        var queryEmbeddings = queries.EmbedWithoutGraph();
        var keyEmbeddings = keys.EmbedWithoutGraph();

        queryEmbeddings.requires_grad_(true);
        keyEmbeddings.requires_grad_(true);
        Tensor loss;
        using (NewDisposeScope())
        {
            loss = (retriever.Loss(batch, queryEmbeddings, keyEmbeddings) / lossDivisor).MoveToOuterDisposeScope();
            loss.backward();
        }
        var forward = clock.Elapsed;
        clock.Restart();

        queries.Backpropagate(queryEmbeddings.grad ?? zeros_like(queryEmbeddings));
        keys.Backpropagate(keyEmbeddings.grad ?? zeros_like(keyEmbeddings));
        return new MicroBatchPass(loss.item<float>(), forward, clock.Elapsed);
    }

    /// <summary>One side of the batch (queries or keys): its texts, its encoder, its chunks and their generator states.</summary>
    private sealed class Side(TokenBatch texts, Func<TokenBatch, Tensor> embed, int chunkSize)
    {
        private readonly IReadOnlyList<(TokenBatch Texts, long[] Rows)> chunks = ChunksByLength(texts, chunkSize)
            .Select(rows => (texts.Rows(rows), rows.Select(r => (long)r).ToArray())).ToList();
        private readonly List<byte[]> generatorStates = [];

        /// <summary>Every text's embedding, in the batch's row order, with no graph behind it.</summary>
        public Tensor EmbedWithoutGraph()
        {
            Tensor? all = null;
            using var _ = no_grad();
            foreach (var (chunkTexts, rows) in chunks)
            {
                generatorStates.Add(GeneratorReplay.Capture());
                using var chunkScope = NewDisposeScope();
                var embeddings = embed(chunkTexts);
                all ??= zeros([texts.BatchSize, embeddings.shape[1]], embeddings.dtype).MoveToOuterDisposeScope();
                all.index_copy_(0, tensor(rows), embeddings);
            }
            return all!;
        }

        /// <summary>Each chunk embedded again with its graph and its first pass's dropout masks, then backpropagated from its rows of <paramref name="gradient"/>.</summary>
        public void Backpropagate(Tensor gradient)
        {
            for (int i = 0; i < chunks.Count; i++)
            {
                var (chunkTexts, rows) = chunks[i];
                using var chunkScope = NewDisposeScope();
                var chunkGradient = gradient.index_select(0, tensor(rows));
                GeneratorReplay.Replay(generatorStates[i], () =>
                {
                    Tensor embeddings;
                    // As in the single pass: only the graph holds the forward's intermediates when backward starts.
                    using (NewDisposeScope()) embeddings = embed(chunkTexts).MoveToOuterDisposeScope();
                    autograd.backward([embeddings], [chunkGradient]);
                });
            }
        }
    }
}
