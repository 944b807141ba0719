using LlmEmbedder.Data;

namespace LlmEmbedder.Cli.Commands;

/// <summary>--version / --task / --instruction_file of eval and mine: which instruction, if any, prefixes queries and keys.</summary>
internal static class InstructionArgument
{
    /// <param name="defaultTask">The task when --task is absent (eval: the eval file's first row's "task").</param>
    public static Instruction? Resolve(string? version, string? task, string? instructionFile, TextEncoding encoding, string? defaultTask = null)
    {
        if (version is null)
        {
            if (task is not null) throw new EmbedderException("--task needs --version (an instruction is chosen by both)");
            return null;
        }
        var instructions = instructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(instructionFile, encoding);
        var chosen = instructions.Get(version);
        task ??= defaultTask;
        if (task is not null) return chosen.InstructionFor(task);
        return chosen.AnyTaskInstruction
            ?? throw new EmbedderException($"version \"{version}\" has an instruction per task ({string.Join(", ", chosen.Instructions.Keys.Order(StringComparer.Ordinal))}); say which with --task");
    }
}
