"""The consensus rule dialog of the consensus export: method, quorum and minimum annotators."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from s2ld_core.consensus import ConsensusRule

#: Consensus methods with the text shown for each.
METHOD_TEXT = {
    "visible_mean": "Mean of the annotators who marked the point visible",
    "strict_mean": "Plain mean of all annotators; any invisible mark makes the point invisible",
}


class ConsensusRuleDialog(QDialog):
    """Edit a :class:`ConsensusRule`; the description line follows every change."""

    def __init__(self, rule: ConsensusRule | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Consensus rule")
        rule = rule or ConsensusRule()
        self.method = QComboBox()
        for key, text in METHOD_TEXT.items():
            self.method.addItem(text, key)
        self.method.setCurrentIndex(list(METHOD_TEXT).index(rule.method))
        self.quorum = QSpinBox()
        self.quorum.setRange(0, 99)
        # Value 0 shows this text and means a strict majority of the finished annotators.
        self.quorum.setSpecialValueText("majority")
        self.quorum.setValue(rule.quorum or 0)
        self.quorum.setToolTip("Visible marks needed for a visible consensus point (visible_mean only)")
        self.min_annotators = QSpinBox()
        self.min_annotators.setRange(1, 99)
        self.min_annotators.setValue(rule.min_annotators)
        self.min_annotators.setToolTip("Images with fewer finished annotators are left out of the export")
        self.description = QLabel()
        self.description.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Quorum", self.quorum)
        form.addRow("Minimum finished annotators", self.min_annotators)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.description)
        layout.addWidget(buttons)

        self.method.currentIndexChanged.connect(self._update)
        self.quorum.valueChanged.connect(self._update)
        self.min_annotators.valueChanged.connect(self._update)
        self._update()

    def rule(self) -> ConsensusRule:
        """Return the rule the controls describe."""
        quorum = self.quorum.value()
        return ConsensusRule(method=self.method.currentData(), quorum=quorum or None, min_annotators=self.min_annotators.value())

    def _update(self) -> None:
        self.quorum.setEnabled(self.method.currentData() == "visible_mean")
        self.description.setText(self.rule().describe())


def ask_consensus_rule(parent: QWidget | None, rule: ConsensusRule | None = None) -> ConsensusRule | None:
    """Show the dialog; return the chosen rule, or None when cancelled."""
    dialog = ConsensusRuleDialog(rule, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.rule()
