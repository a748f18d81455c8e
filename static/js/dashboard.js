// Progressive enhancement only: "Try again" reloads just that panel in place.
// Without JavaScript the link opens the panel's own page. No PHI is handled here.
(function () {
  "use strict";
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.retry") : null;
    if (!link) { return; }
    var section = link.closest("section");
    if (!section) { return; }
    event.preventDefault();
    link.textContent = "Loading…";
    var url = new URL(link.href, window.location.href);
    url.searchParams.set("partial", "1");
    fetch(url.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { if (!response.ok) { throw new Error(); } return response.text(); })
      .then(function (html) {
        var template = document.createElement("template");
        template.innerHTML = html.trim();
        var fresh = template.content.querySelector("section");
        if (fresh) { section.replaceWith(fresh); } else { window.location.href = link.href; }
      })
      .catch(function () { window.location.href = link.href; });
  });
})();
