using LockService.Cli;

// Everything the command line means is declared in LockCtl; this file only hands it the arguments.
return await LockCtl.InvokeAsync(args);
