using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace LockService.Tests.Infrastructure;

/// <summary>
/// Headless Chromium from the machine's own packages (Debian: chromium and chromium-driver), driven by Selenium with
/// both paths given, so that Selenium Manager never looks for, or downloads, a browser or a driver.
/// </summary>
public static class Browser
{
    public static string ChromiumPath => Environment.GetEnvironmentVariable("LOCKSERVICE_CHROMIUM") ?? "/usr/bin/chromium";

    public static string DriverPath => Environment.GetEnvironmentVariable("LOCKSERVICE_CHROMEDRIVER") ?? "/usr/bin/chromedriver";

    public static bool Available => File.Exists(ChromiumPath) && File.Exists(DriverPath);

    public const string Reason = "needs Chromium and its driver (apt-get install chromium chromium-driver): this test drives the dashboard in a real browser";

    public static ChromeDriver Start()
    {
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(DriverPath)!, Path.GetFileName(DriverPath));
        service.HideCommandPromptWindow = true;
        service.SuppressInitialDiagnosticInformation = true;
        var options = new ChromeOptions { BinaryLocation = ChromiumPath };
        options.AddArguments(
            "--headless=new",
            "--no-sandbox",                     // CI runs as root
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1366,860",
            "--no-first-run",
            "--disable-background-networking",  // nothing but the service under test
            "--disable-component-update",
            "--disable-sync",
            "--disable-background-timer-throttling",
            "--disable-renderer-backgrounding");
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    /// <summary>Waits for <paramref name="condition"/> to hold (polling every 50 ms) or fails after <paramref name="timeout"/>.</summary>
    public static T WaitFor<T>(this IWebDriver driver, Func<IWebDriver, T> condition, TimeSpan timeout, string what)
    {
        var wait = new WebDriverWait(driver, timeout) { PollingInterval = TimeSpan.FromMilliseconds(50), Message = what };
        wait.IgnoreExceptionTypes(typeof(NoSuchElementException), typeof(StaleElementReferenceException));
        return wait.Until(condition);
    }
}

/// <summary>A fact that drives Chromium: skipped with the reason on a machine without it.</summary>
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute() => Skip = Browser.Available ? null : Browser.Reason;
}

/// <summary>A theory that drives Chromium: skipped with the reason on a machine without it.</summary>
public sealed class BrowserTheoryAttribute : TheoryAttribute
{
    public BrowserTheoryAttribute() => Skip = Browser.Available ? null : Browser.Reason;
}
