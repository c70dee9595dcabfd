// MathJax 2 configuration, read when assets/mathjax/MathJax.js loads. Only the math that
// pymdownx.arithmatex marks (class "arithmatex") is typeset.
window.MathJax = {
  tex2jax: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    ignoreClass: ".*|",
    processClass: "arithmatex",
  },
  TeX: { equationNumbers: { autoNumber: "none" } },
  CommonHTML: { linebreaks: { automatic: true } },
  messageStyle: "none",
};
