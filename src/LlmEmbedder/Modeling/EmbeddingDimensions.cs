namespace LlmEmbedder.Modeling;

/// <summary>
/// Shorter embeddings from longer ones, as the OpenAI API's <c>dimensions</c> and Matryoshka models define them: keep
/// the first dimensions of each row, then L2-normalise again when the model's embeddings are normalised.
/// </summary>
public static class EmbeddingDimensions
{
    /// <summary>Rejects a requested size that is not between 1 and the model's dimension.</summary>
    public static void Check(int requested, int dimension, string what = "dimensions")
    {
        if (requested < 1 || requested > dimension)
            throw new EmbedderException($"{what} {requested}: must be between 1 and the model's {dimension}");
    }

    /// <param name="rows">Row-major [count × <paramref name="dimension"/>].</param>
    /// <returns>Row-major [count × <paramref name="newDimension"/>] (the same array when nothing changes).</returns>
    public static float[] Truncate(float[] rows, int dimension, int newDimension, bool normalize)
    {
        Check(newDimension, dimension);
        if (newDimension == dimension) return rows;
        int count = rows.Length / dimension;
        var output = new float[(long)count * newDimension];
        for (int r = 0; r < count; r++)
        {
            var row = output.AsSpan(r * newDimension, newDimension);
            rows.AsSpan(r * dimension, newDimension).CopyTo(row);
            if (normalize) Normalize(row);
        }
        return output;
    }

    /// <summary>Scales a vector to unit L2 norm (as torch's normalize: a zero vector stays zero).</summary>
    public static void Normalize(Span<float> row)
    {
        double sum = 0;
        foreach (var value in row) sum += (double)value * value;
        var scale = (float)(1.0 / Math.Max(Math.Sqrt(sum), 1e-12));
        for (int i = 0; i < row.Length; i++) row[i] *= scale;
    }
}
