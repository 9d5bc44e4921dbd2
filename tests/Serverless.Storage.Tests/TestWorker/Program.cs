using Serverless.Storage;

// blob-race DIR NAME ETAG GOFILE: wait for GOFILE, then try one If-Match write; print WON or LOST
// (two of these race from separate processes: exactly one may win).
if (args.Length > 0 && args[0] == "blob-race")
{
    var store = Stores.OpenEmbeddedBlobContainer(args[1]);
    while (!File.Exists(args[4])) Thread.SpinWait(100);
    try
    {
        await store.PutAsync(args[2], new MemoryStream(System.Text.Encoding.UTF8.GetBytes($"written by {Environment.ProcessId}")), BlobCondition.MustMatch(args[3]));
        Console.WriteLine("WON");
    }
    catch (BlobConditionFailedException)
    {
        Console.WriteLine("LOST");
    }
    return 0;
}

Console.Error.WriteLine("usage: Serverless.Storage.TestWorker blob-race DIR NAME ETAG GOFILE");
return 2;
