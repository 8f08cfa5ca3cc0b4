// Swagger UI over the merged API description. A file of its own, not an inline script: the page's
// Content-Security-Policy allows scripts of this origin only.
/* global SwaggerUIBundle */
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge from validator.swagger.io: nothing leaves this origin.
    validatorUrl: null,
  });
});
