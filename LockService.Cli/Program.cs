using LockService.Cli;

// Everything the command line means is declared in LockCtl; this file only hands it the arguments. The one exception is
// run's watchdog, lockctl started again by itself with a verb of its own (see Watchdog).
return args is [Watchdog.Verb, ..] ? Watchdog.Run(args) : await LockCtl.InvokeAsync(args);
