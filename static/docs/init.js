// Starts Swagger UI on /api/v1/docs. A static file, not an inline script: the page's Content-Security-Policy
// (default-src 'self') runs no inline code. The page names the OpenAPI document in data-spec-url.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // no badge fetched from validator.swagger.io: the docs work offline
    persistAuthorization: false, // a pasted token lives in this page's memory only
  });
});
