// Benchmarks race LlmEmbedder against the alternatives a user would pick. Usage: dotnet run -c Release -- <name>
Console.Error.WriteLine("usage: LlmEmbedder.Bench <benchmark>");
return 2;
