namespace LlmEmbedder.Training.Optimization;

/// <summary>
/// Linear warm-up from 0 to the peak rate, then linear decay to 0 at the last step
/// (transformers' get_linear_schedule_with_warmup). Step is the number of optimizer steps already taken.
/// </summary>
public sealed record LinearWarmupSchedule(double PeakLearningRate, int WarmupSteps, int TotalSteps)
{
    /// <summary>Warm-up steps from a ratio as the Hugging Face Trainer rounds it (ceil).</summary>
    public static LinearWarmupSchedule FromRatio(double peak, double warmupRatio, int totalSteps) =>
        new(peak, (int)Math.Ceiling(warmupRatio * totalSteps), totalSteps);

    public double LearningRateAt(int step) => step < WarmupSteps
        ? PeakLearningRate * step / Math.Max(1, WarmupSteps)
        : PeakLearningRate * Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
}
