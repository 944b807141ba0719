using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Reference;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Modeling;

/// <summary>
/// Our TorchSharp BertModel, loaded from the Hugging Face folder converted from the packaged ONNX models, against
/// ONNX Runtime running the original graph: last_hidden_state (on real tokens) and pooled embeddings within 1e-4,
/// on one padded batch of mixed lengths that includes inputs truncated at 512 tokens.
/// </summary>
[Collection(HeavyTests.Name)]
public sealed class ModelParityWithOnnxRuntimeTests(ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    private static readonly string[] Texts =
    [
        "Hello world!",
        "A short query about retrieval augmented generation?",
        "",
        string.Join(" ", Enumerable.Repeat("The quick brown fox jumps over the lazy dog, again and again.", 60)),
        "Snowflake's arctic-embed and MiniLM are BERT models with 6 layers; café naïve résumé.",
        string.Join(" ", Enumerable.Range(0, 700).Select(i => $"w{i}")),
    ];

    public static TheoryData<string, string> Models => new() { { "arctic", "cls" }, { "minilm", "mean" } };

    [Theory]
    [MemberData(nameof(Models))]
    public void LastHiddenStateAndPooledEmbeddingsMatchOnnxRuntime(string modelName, string pooling)
    {
        var reference = modelName == "arctic" ? PretrainedOnnxModels.ArcticXs : PretrainedOnnxModels.MiniLM;
        using var encoder = SentenceEncoder.Load(reference.HuggingFaceDir, new EncoderSpec { Pooling = Pooling.Parse(pooling) });
        var batch = encoder.Tokenizer.EncodeBatch(Texts, 512);
        Assert.Equal(512, batch.SequenceLength);
        Assert.True(batch.AttentionMask.Count(m => m == 1) < batch.InputIds.Length, "the batch must contain padding");

        int hidden = encoder.Dimension;
        var expected = reference.RunLastHiddenState(batch.InputIds, batch.AttentionMask, new long[batch.InputIds.Length],
            batch.BatchSize, batch.SequenceLength);

        float[] actual;
        float[] pooled;
        using (inference_mode())
        using (NewDisposeScope())
        {
            var ids = tensor(batch.InputIds, [batch.BatchSize, batch.SequenceLength]);
            var mask = tensor(batch.AttentionMask, [batch.BatchSize, batch.SequenceLength]);
            actual = encoder.Model.call(ids, mask).contiguous().data<float>().ToArray();
            pooled = encoder.Forward(batch).contiguous().data<float>().ToArray();
        }

        double worstHidden = 0;
        for (int row = 0; row < batch.BatchSize; row++)
            for (int position = 0; position < batch.SequenceLength; position++)
            {
                if (batch.AttentionMask[row * batch.SequenceLength + position] == 0) continue;
                long offset = ((long)row * batch.SequenceLength + position) * hidden;
                for (int d = 0; d < hidden; d++)
                    worstHidden = Math.Max(worstHidden, Math.Abs(actual[offset + d] - expected[offset + d]));
            }

        var expectedPooled = PoolAndNormalize(expected, batch.AttentionMask, batch.BatchSize, batch.SequenceLength, hidden, pooling);
        double worstPooled = pooled.Zip(expectedPooled, (a, e) => Math.Abs(a - e)).Max();
        output.WriteLine($"{modelName}: max |Δ| last_hidden_state {worstHidden:E2}, pooled ({pooling}, L2) {worstPooled:E2}");
        Assert.InRange(worstHidden, 0, Tolerance);
        Assert.InRange(worstPooled, 0, Tolerance);
    }

    /// <summary>CLS or masked-mean pooling and L2 normalisation, computed in double from the ONNX Runtime output.</summary>
    internal static float[] PoolAndNormalize(float[] hiddenStates, long[] mask, int batch, int sequence, int hidden, string pooling)
    {
        var result = new float[batch * hidden];
        for (int row = 0; row < batch; row++)
        {
            var vector = new double[hidden];
            int count = 0;
            for (int position = 0; position < (pooling == "cls" ? 1 : sequence); position++)
            {
                if (mask[row * sequence + position] == 0) continue;
                count++;
                for (int d = 0; d < hidden; d++) vector[d] += hiddenStates[((long)row * sequence + position) * hidden + d];
            }
            double norm = Math.Sqrt(vector.Sum(v => (v / count) * (v / count)));
            for (int d = 0; d < hidden; d++) result[row * hidden + d] = (float)(vector[d] / count / norm);
        }
        return result;
    }
}
