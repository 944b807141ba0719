using System.Text.Json;
using LlmEmbedder.Data;

namespace LlmEmbedder.Training.Checkpointing;

/// <summary>
/// What a checkpoint needs besides weights and optimizer moments to continue exactly: trainer_state.json.
/// <paramref name="TorchThreads"/> is recorded because libtorch's CPU kernels sum in a thread-dependent order: a
/// resume on another thread count continues correctly but not bit for bit.
/// </summary>
public sealed record TrainerState(int GlobalStep, int TotalSteps, BatchSamplerState Sampler, List<LossPoint> LossHistory, int? TorchThreads = null)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    public void Save(string path) => FileUtil.WriteAllTextAtomic(path, JsonSerializer.Serialize(this, JsonOptions));

    public static TrainerState Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), JsonOptions)
                ?? throw new EmbedderException($"{path}: empty trainer state");
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{path}: not a trainer state ({e.Message})");
        }
    }
}

/// <summary>The loss of one optimizer step (for the loss curve and for checking a resumed run).</summary>
public sealed record LossPoint(int Step, double Loss, double LearningRate);
